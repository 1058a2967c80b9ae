//! Amazon product metadata (`meta_*.json.gz`): the 2014 files of Python dict literals and the
//! later strict JSON lines; categories and `related` edges (also_bought, ...).
//!
//! OWNER: helper A.
