use super::*;

/// Every name an entry uses is made by an earlier entry, and no file is written twice:
/// checked on the table alone, without generating a key.
#[test]
fn the_table_names_only_what_it_made_before_and_each_file_once() {
    let (mut cas, mut leaves, mut files) = (Vec::new(), Vec::new(), Vec::new());
    let mut file = |f: String| {
        assert!(!files.contains(&f), "{f} is written twice");
        files.push(f);
    };
    for h in HIERARCHIES {
        for item in h.items {
            let known = |ids: &[&str], cas: &[&str]| {
                for id in ids {
                    assert!(cas.contains(id), "CA {id} is used before it is made");
                }
            };
            match item {
                Item::Ca(c) => {
                    known(c.parent.as_slice(), &cas);
                    cas.push(c.id);
                    file(c.file.into());
                    if let Some(crl) = c.crl {
                        file(crl.into());
                    }
                }
                Item::Bundle {
                    file: f, cas: ids, ..
                } => {
                    known(ids, &cas);
                    file(f.to_string());
                }
                Item::Leaf(l) | Item::KeyMismatch(l) => {
                    assert!(!l.chain.is_empty(), "{} has no issuer", l.base);
                    known(l.chain, &cas);
                    leaves.push(l.base);
                    file(format!("{}.pem", l.base));
                }
                Item::OtherP12 {
                    of, file: f, chain, ..
                } => {
                    assert!(leaves.contains(of), "{of} is used before it is made");
                    known(chain, &cas);
                    file(f.to_string());
                }
                Item::CaRevocation {
                    file: f,
                    issuer,
                    revoked,
                    ..
                } => {
                    known(&[issuer], &cas);
                    known(revoked, &cas);
                    file(f.to_string());
                }
            }
        }
    }
}
