"""DVBPR files. OWNER: lead."""

from __future__ import annotations


def write_dvbpr(path, train, validation, test, jpeg_bytes, categories=None):  # replaced by the lead
    raise NotImplementedError
