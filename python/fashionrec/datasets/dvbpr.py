"""DVBPR data sets. OWNER: lead."""

from __future__ import annotations


def dvbpr(path):  # replaced by the lead
    raise NotImplementedError
