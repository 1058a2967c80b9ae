//! Tests of the readers and the writer, through files: rows, filters, errors and their lines,
//! the parallel and quoted passes agreeing.

use std::io::Write;
use std::sync::Arc;

use super::read::read_csv_chunked;
use super::*;
use crate::data::{Duplicates, IdKind, IdMap, RawIds, Unknown};

fn file(content: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content).unwrap();
    f.flush().unwrap();
    f
}

fn opts(value: bool) -> CsvOptions {
    CsvOptions {
        user: Col::Name("user_id".into()),
        item: Col::Name("anime_id".into()),
        value: value.then(|| Col::Name("rating".into())),
        ..Default::default()
    }
}

fn ints(c: &IdColumn) -> Vec<i64> {
    match c {
        IdColumn::Int(v) => v.clone(),
        _ => panic!("expected integer ids, got {c:?}"),
    }
}

fn strs(c: &IdColumn) -> Vec<String> {
    match c {
        IdColumn::Str(s) => s.iter().map(str::to_string).collect(),
        _ => panic!("expected string ids, got {c:?}"),
    }
}

/// The error message, checked to start with the file's path.
fn err(content: &[u8], o: &CsvOptions) -> String {
    let f = file(content);
    let e = read_csv(f.path(), o).unwrap_err().to_string();
    let p = f.path().display().to_string();
    assert!(e.starts_with(&format!("{p}: ")), "{e} does not name {p}");
    e
}

#[test]
fn reads_ints_values_crlf_bom_no_final_newline() {
    let f = file(b"\xEF\xBB\xBFuser_id,anime_id,rating\r\n1,20,8\r\n2,10,-1\r\n1,10,7");
    let t = read_csv(f.path(), &opts(true)).unwrap();
    assert_eq!(ints(&t.users), vec![1, 2, 1]);
    assert_eq!(ints(&t.items), vec![20, 10, 10]);
    assert_eq!(t.values.unwrap(), vec![8.0, -1.0, 7.0]);
    assert_eq!((t.report.rows, t.report.kept, t.report.parallel), (3, 3, true));
}

#[test]
fn filters_are_counted() {
    let f = file(b"user_id,anime_id,rating\n1,20,8\n2,10,-1\n1,10,3\n3,30,9\n4,30,10\n");
    let mut o = opts(true);
    o.drop_values = vec![-1.0];
    o.min_value = Some(5.0);
    o.drop_items = Some(IdSet::Int([20].into_iter().collect()));
    let t = read_csv(f.path(), &o).unwrap();
    assert_eq!(ints(&t.users), vec![3, 4]);
    let r = &t.report;
    // -1 is below min_value, so min_value counts it (the first filter that drops a row).
    assert_eq!((r.rows, r.dropped_min_value, r.dropped_values, r.dropped_items, r.kept), (5, 2, 0, 1, 2));
    let mut o = opts(true);
    o.drop_values = vec![-1.0];
    o.keep_items = Some(IdSet::Int([10, 30].into_iter().collect()));
    o.min_item_rows = Some(2);
    let t = read_csv(f.path(), &o).unwrap();
    // rows left after drop_values and keep_items: (1,10,3) (3,30,9) (4,30,10); item 10 has 1 row.
    assert_eq!(ints(&t.items), vec![30, 30]);
    let r = &t.report;
    assert_eq!((r.dropped_values, r.dropped_items, r.dropped_min_item_rows, r.items_below_min_rows), (1, 1, 1, 1));
}

#[test]
fn quoted_fields_give_the_same_rows_as_plain_ones() {
    let plain = b"user_id,anime_id,rating\nab,1,5\ncd,2,4\n";
    let quoted = b"\"user_id\",anime_id,rating\n\"ab\",1,5\n\"c\"\"d\",2,\"4\"\n\"x,\ny\",3,1";
    let a = read_csv(file(plain).path(), &opts(true)).unwrap();
    let b = read_csv(file(quoted).path(), &opts(true)).unwrap();
    assert_eq!(strs(&a.users), vec!["ab", "cd"]);
    assert_eq!(strs(&b.users), vec!["ab", "c\"d", "x,\ny"]);
    assert_eq!(b.values.unwrap(), vec![5.0, 4.0, 1.0]);
    assert!(a.report.parallel && !b.report.parallel);
}

#[test]
fn auto_switches_to_strings_and_keeps_the_text() {
    let f = file(b"user_id,anime_id\n007,1\nabc,2\n");
    let t = read_csv(f.path(), &opts(false)).unwrap();
    assert_eq!(strs(&t.users), vec!["007", "abc"]);
    assert_eq!(t.report.user_kind, Some(IdKind::Str));
    let mut o = opts(false);
    o.user_type = IdType::Int;
    let e = read_csv(f.path(), &o).unwrap_err().to_string();
    assert!(e.contains("line 3, column 'user_id': 'abc' is not an integer id"), "{e}");
}

#[test]
fn headerless_by_position_and_other_delimiters() {
    let f = file(b"1\t5\t2.5\n2\t6\t3\n");
    let o = CsvOptions {
        delimiter: b'\t',
        header: false,
        user: Col::Pos(0),
        item: Col::Pos(1),
        value: Some(Col::Pos(2)),
        ..Default::default()
    };
    let t = read_csv(f.path(), &o).unwrap();
    assert_eq!((ints(&t.users), t.values.unwrap()), (vec![1, 2], vec![2.5, 3.0]));
    let e = err(b"1\t5\tx\n", &o);
    assert!(e.contains("line 1, column 2: 'x' is not a number"), "{e}");
}

#[test]
fn errors_name_file_line_column_and_value() {
    let o = opts(true);
    let mut many = b"user_id,anime_id,rating\n".to_vec();
    for k in 0..200_000 {
        many.extend_from_slice(format!("{k},{},{}\n", k % 77, k % 10).as_bytes());
    }
    many.extend_from_slice(b"5,6,abc\n7,8,9\n");
    // line 1 is the header, then 200,000 good lines: the bad one is line 200,002.
    let e = err(&many, &o);
    assert!(e.contains("line 200002, column 'rating': 'abc' is not a number"), "{e}");
    let e = err(b"user_id,anime_id,rating\n1,2,3\n4,5\n", &o);
    assert!(e.contains("line 3, expected 3 fields, found 2 (a truncated line?)"), "{e}");
    let e = err(b"user_id,anime_id,rating\n1,2,nan\n", &o);
    assert!(e.contains("line 2, column 'rating': 'nan' is not a finite"), "{e}");
    let e = err(b"user_id,anime_id,rating\n1,,3\n", &o);
    assert!(e.contains("line 2, column 'anime_id': the id is empty"), "{e}");
    let e = err(b"user_id,anime_id,rating\n\"1,2,3\n", &o);
    assert!(e.contains("line 2, a quoted field opened on line 2 is never closed"), "{e}");
    let e = err(b"user_id,anime_id,rating\n\"1\"x,2,3\n", &o);
    assert!(e.contains("line 2, unexpected 'x' after the closing quote"), "{e}");
    let e = err(b"user_id\tanime_id\trating\n1\t2\t3\n", &o);
    assert!(e.contains("no column \"user_id\" in the header") && e.contains("delimiter"), "{e}");
    let e = err(b"user_id,anime_id,rating\n\n\n", &o);
    assert!(e.contains("no data rows"), "{e}");
    let e = err(b"\xFF\xD8\xFF\xE0\x00\x10JFIF", &o);
    assert!(e.contains("this is a JPEG image, not delimited text"), "{e}");
    let e = err(b"PAR1\x15\x04", &o);
    assert!(e.contains("Parquet"), "{e}");
    let e = err(b"user_id,anime_id\x00,rating\n", &o);
    assert!(e.contains("NUL byte at offset 16"), "{e}");
    assert!(read_csv(file(b"").path(), &o).unwrap_err().to_string().contains("the file is empty"));
    let e = err(b"user_id,anime_id,rating", &o);
    assert!(e.contains("no data rows"), "{e}");
}

#[test]
fn parallel_chunks_agree_with_one_pass() {
    // 3 MB so the quote-free path cuts several chunks; the same content with one quoted
    // field takes the sequential path. Both must give identical rows.
    let mut body = String::from("user_id,anime_id,rating\n");
    for k in 0..250_000u64 {
        body.push_str(&format!("u{},{},{}\r\n", k % 997, (k * 31) % 1000, (k % 11) as i64 - 1));
        if k % 50_000 == 0 {
            body.push('\n'); // blank lines are skipped and counted
        }
    }
    let quoted = body.replacen("u0,", "\"u0\",", 1);
    let mut o = opts(true);
    o.drop_values = vec![-1.0];
    let a = read_csv(file(body.as_bytes()).path(), &o).unwrap();
    let b = read_csv(file(quoted.as_bytes()).path(), &o).unwrap();
    assert!(a.report.parallel && !b.report.parallel);
    assert_eq!(a.users, b.users);
    assert_eq!(a.items, b.items);
    assert_eq!(a.values, b.values);
    assert_eq!(a.report.blank_lines, 5);
    assert_eq!(b.report.blank_lines, 5);
    assert_eq!(a.report.dropped_values, 250_000 / 11 + 1);
}

#[test]
fn interactions_with_catalogues_unknown_and_duplicates() {
    let f = file(b"user_id,anime_id,rating\na,1,5\nb,2,4\nc,9,3\na,1,2\n");
    let o = opts(true);
    let items = Arc::new(IdMap::build(RawIds::Int(&[1, 2, 3])));
    let e = read_interactions(f.path(), &o, None, Some(items.clone()), Unknown::Error, Duplicates::Sum)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 4, column 'anime_id': unknown id 9"), "{e}");
    let (x, r) = read_interactions(f.path(), &o, None, Some(items.clone()), Unknown::Drop, Duplicates::Sum).unwrap();
    assert_eq!((x.n_items(), x.nnz(), r.dropped_unknown, r.kept, r.pairs), (3, 2, 1, 3, 2));
    assert_eq!(x.by_user().values.as_ref().unwrap(), &vec![7.0, 4.0]);
    let e = read_interactions(f.path(), &o, None, Some(items), Unknown::Drop, Duplicates::Error)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lines 2 and 5 hold the same pair"), "{e}");
}

#[test]
fn min_item_rows_prunes_a_catalogue() {
    let f = file(b"user_id,anime_id\n1,1\n2,1\n1,2\n");
    let mut o = opts(false);
    o.min_item_rows = Some(2);
    let items = Arc::new(IdMap::build(RawIds::Int(&[1, 2, 3])));
    let (x, r) = read_interactions(f.path(), &o, None, Some(items), Unknown::Error, Duplicates::Error).unwrap();
    assert_eq!(x.ids().items.int_ids().unwrap(), vec![1]);
    assert_eq!((r.dropped_min_item_rows, r.kept), (1, 2));
    o.min_item_rows = Some(5);
    let e = read_interactions(f.path(), &o, None, None, Unknown::Error, Duplicates::Error).unwrap_err();
    assert!(e.to_string().contains("no rows left after the filters"), "{e}");
}

#[test]
fn id_lists() {
    let f = file(b"\xEF\xBB\xBF10\r\n30\r\n20");
    assert_eq!(ints(&read_id_list(f.path(), IdType::Auto, false).unwrap()), vec![10, 30, 20]);
    let f = file(b"pmfk\nUDRR\n");
    assert_eq!(strs(&read_id_list(f.path(), IdType::Auto, false).unwrap()), vec!["pmfk", "UDRR"]);
    let f = file(b"a\nb\na\n");
    let e = read_id_list(f.path(), IdType::Auto, false).unwrap_err().to_string();
    assert!(e.contains("line 3: id \"a\" is already on line 1"), "{e}");
    let f = file(b"1\n\n2\n");
    let e = read_id_list(f.path(), IdType::Auto, false).unwrap_err().to_string();
    assert!(e.contains("line 2 is blank"), "{e}");
    let f = file(b"1\nx\n");
    let e = read_id_list(f.path(), IdType::Int, false).unwrap_err().to_string();
    assert!(e.contains("line 2: 'x' is not an integer id"), "{e}");
}

#[test]
fn writer_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.csv");
    let u: Vec<i64> = (0..200_000).collect();
    let i: Vec<i64> = u.iter().map(|x| x % 13 - 6).collect();
    write_int_csv(&p, &["user_id", "anime_id"], &[&u, &i]).unwrap();
    let t = read_csv(&p, &opts(false)).unwrap();
    assert_eq!((ints(&t.users), ints(&t.items)), (u, i));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any chunking, quoted or not, LF or CRLF, with blank lines and with or without a final
    /// newline, gives exactly the rows written, in order.
    #[test]
    fn any_chunking_and_quoting_reads_the_rows_written(
        rows in proptest::collection::vec(("[a-z0-9]{1,6}", -5i64..50, -1i32..10, proptest::bool::ANY), 1..120),
        crlf in proptest::bool::ANY,
        final_newline in proptest::bool::ANY,
        chunk in 1usize..200,
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut plain = format!("user_id,anime_id,rating{eol}");
        let mut quoted = plain.clone();
        for (k, (u, i, v, blank)) in rows.iter().enumerate() {
            let end = if k + 1 == rows.len() && !final_newline { "" } else { eol };
            plain.push_str(&format!("{u},{i},{v}{end}"));
            quoted.push_str(&format!("\"{u}\",{i},\"{v}\"{end}"));
            if *blank && !end.is_empty() {
                plain.push_str(eol);
                quoted.push_str(eol);
            }
        }
        let mut o = opts(true);
        o.user_type = IdType::Str;
        o.drop_values = vec![-1.0];
        let want: Vec<_> = rows.iter().filter(|r| r.2 != -1).collect();
        for (text, c) in [(&plain, chunk), (&plain, 1 << 20), (&quoted, chunk)] {
            let f = file(text.as_bytes());
            let t = read_csv_chunked(f.path(), &o, c).unwrap();
            proptest::prop_assert_eq!(strs(&t.users), want.iter().map(|r| r.0.clone()).collect::<Vec<_>>());
            proptest::prop_assert_eq!(ints(&t.items), want.iter().map(|r| r.1).collect::<Vec<_>>());
            proptest::prop_assert_eq!(t.values.unwrap(), want.iter().map(|r| r.2 as f32).collect::<Vec<_>>());
            proptest::prop_assert_eq!(t.report.dropped_values, rows.len() - want.len());
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// The line number of a bad value is right whatever chunk it falls in.
    #[test]
    fn bad_value_line_is_right_across_chunks(n in 2usize..300, bad in 0usize..300, chunk in 1usize..100, blanks in 0usize..5) {
        let bad = bad % n;
        let mut text = String::from("user_id,anime_id,rating\n");
        let mut line = 1;
        let mut bad_line = 0;
        for k in 0..n {
            if k % 7 == 0 && blanks > 0 {
                text.push_str(&"\n".repeat(blanks));
                line += blanks;
            }
            line += 1;
            if k == bad {
                bad_line = line;
                text.push_str(&format!("{k},1,x{k}\n"));
            } else {
                text.push_str(&format!("{k},1,{}\n", k % 10));
            }
        }
        let f = file(text.as_bytes());
        let e = read_csv_chunked(f.path(), &opts(true), chunk).unwrap_err().to_string();
        let want = format!("line {bad_line}, column 'rating': 'x{bad}' is not a number");
        proptest::prop_assert!(e.contains(&want), "{} does not contain {}", e, want);
    }
}
