//! Opening files: read-only stores never create, format or change a file; the "in use" hint is
//! given only when another handle holds the file.

use tracestore::{ErrorCode, Store, Timestamp, TraceInput};

fn one_trace(store: &Store) {
    let t = Timestamp::parse("2026-03-14T10:00:00Z").unwrap();
    store
        .ingest("p", vec![TraceInput::new("t1", "agent", t)])
        .unwrap();
}

#[test]
fn read_only_never_creates_or_formats() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.redb");
    assert!(Store::builder().open_read_only(&missing).is_err());
    assert!(!missing.exists(), "a read-only open created the file");

    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let e = Store::builder().open_read_only(&empty).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Internal, "{e}");
    assert_eq!(
        std::fs::metadata(&empty).unwrap().len(),
        0,
        "formatted a 0-byte file"
    );
}

#[test]
fn read_only_reads_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    {
        let s = Store::open(&path).unwrap();
        one_trace(&s);
        s.create_api_key("p").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let mut ro = Store::builder().open_read_only(&path).unwrap();
    let page = ro.query_params("p", [("limit", "5")]).unwrap();
    assert_eq!(page.traces.len(), 1);
    assert_eq!(ro.get_trace("p", "t1").unwrap().trace.id, "t1");
    assert_eq!(ro.list_api_keys().unwrap().len(), 1);
    assert!(ro.verify().unwrap().is_empty());
    let t = Timestamp::parse("2026-03-14T10:00:00Z").unwrap();
    for e in [
        ro.ingest("p", vec![TraceInput::new("t2", "agent", t)])
            .unwrap_err(),
        ro.delete_trace("p", "t1").unwrap_err(),
        ro.create_api_key("p").unwrap_err(),
        ro.compact().unwrap_err(),
    ] {
        assert_eq!(e.code(), ErrorCode::ReadOnly, "{e}");
    }
    // A cursor issued by the read-only store continues on it.
    let first = ro.query_params("p", [("limit", "1")]).unwrap();
    assert!(first.next_cursor.is_none());
    drop(ro);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a read-only store changed the file"
    );
}

#[test]
fn in_use_is_told_apart_from_other_open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let held = Store::open(&path).unwrap();
    let e = Store::open(&path).unwrap_err();
    assert!(e.is_database_in_use(), "{e}");
    drop(held);

    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
    let e = Store::open(&garbage).unwrap_err();
    assert!(!e.is_database_in_use(), "{e}");
    let e = Store::open(dir.path().join("no/such/dir/s.redb")).unwrap_err();
    assert!(!e.is_database_in_use(), "{e}");
}

#[test]
fn admin_keys_and_revocation() {
    let s = Store::in_memory().unwrap();
    let admin = s.create_admin_key().unwrap();
    assert!(admin.admin && admin.project.is_empty());
    assert_eq!(
        s.authenticate_principal(&admin.key).unwrap(),
        tracestore::Principal::Admin
    );
    assert_eq!(
        s.authenticate(&admin.key).unwrap_err().code(),
        ErrorCode::Forbidden
    );
    let k = s.create_api_key("p").unwrap();
    assert!(!k.admin);
    assert_eq!(s.authenticate(&k.key).unwrap(), "p");
    // The printed prefix is accepted with or without `ts_`, and the next call is refused.
    assert_eq!(s.revoke_api_key(&format!("ts_{}", k.prefix)).unwrap(), 1);
    assert_eq!(
        s.authenticate(&k.key).unwrap_err().code(),
        ErrorCode::Unauthorized
    );
    assert_eq!(s.revoke_api_key(&admin.prefix).unwrap(), 1);
    assert_eq!(
        s.authenticate_principal(&admin.key).unwrap_err().code(),
        ErrorCode::Unauthorized
    );
    let listed = s.list_api_keys().unwrap();
    assert_eq!(listed.iter().filter(|k| k.admin).count(), 1);
    assert!(listed.iter().all(|k| k.revoked_at.is_some()));
}
