"""Readers (and writers, for tests and synthetic data) of the seed data sets' file formats.

Every reader names the file and the place (byte offset, line, record) in its errors and never
drops input silently. The parsing runs in the Rust core.

* :func:`read_image_features` - McAuley's ``image_features_*.b``, memory-mapped.
* :func:`read_amazon_metadata`, :func:`compatibility_pairs` - ``meta_*.json.gz``.
* :func:`write_dvbpr` - a DVBPR ``*ImgPartitioned.npy`` file in the real layout.
* :func:`read_interactions_csv` (with :class:`CsvReport`), :func:`read_id_list` - delimited
  interaction files and id lists, parsed in Rust (in parallel when unquoted).
"""

from ._amazon import compatibility_pairs, read_amazon_metadata
from ._dvbpr import write_dvbpr
from ._features import read_image_features
from ._tabular import CsvReport, read_id_list, read_interactions_csv

__all__ = [
    "CsvReport",
    "compatibility_pairs",
    "read_amazon_metadata",
    "read_id_list",
    "read_image_features",
    "read_interactions_csv",
    "write_dvbpr",
]
