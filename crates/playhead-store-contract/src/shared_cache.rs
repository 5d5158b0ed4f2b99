//! The [`SharedCache`] port's contract: what the application's shared row cache relies on.
//! Every adapter runs [`shared_cache_contract`] against a fresh key space (a prefix of its own).

use std::time::Duration;

use playhead_core::ports::SharedCache;

/// Reads come back in key order with absent keys as `None`; `put` replaces and expires; `bump`
/// counts from absent as 0, returns nothing stale after a bump, and expires too (a counter that
/// stayed forever would leak one key per profile ever written).
pub async fn shared_cache_contract(c: &dyn SharedCache) {
    let keys = |ks: &[&str]| ks.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
    let got = c.get_many(&keys(&["a", "missing", "b"])).await.expect("get_many on an empty space");
    assert_eq!(got, vec![None, None, None]);
    assert_eq!(c.get_many(&[]).await.expect("get_many of nothing"), Vec::<Option<Vec<u8>>>::new());

    c.put("a", b"first", Duration::from_secs(60)).await.expect("put");
    c.put("b", &[0, 159, 146, 150], Duration::from_secs(60)).await.expect("put binary");
    c.put("a", b"second", Duration::from_secs(60)).await.expect("put again");
    let got = c.get_many(&keys(&["b", "missing", "a"])).await.expect("get_many");
    assert_eq!(
        got,
        vec![Some(vec![0, 159, 146, 150]), None, Some(b"second".to_vec())],
        "order, bytes, replace"
    );

    c.bump(&keys(&["g1", "g2"]), Duration::from_secs(60)).await.expect("bump");
    c.bump(&keys(&["g1"]), Duration::from_secs(60)).await.expect("bump again");
    let got = c.get_many(&keys(&["g1", "g2"])).await.expect("read counters");
    assert_eq!(got, vec![Some(b"2".to_vec()), Some(b"1".to_vec())], "counters are decimal text");

    c.put("short", b"x", Duration::from_millis(150)).await.expect("put short");
    c.bump(&keys(&["short-counter"]), Duration::from_millis(150)).await.expect("bump short");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = c.get_many(&keys(&["short", "short-counter", "a"])).await.expect("after expiry");
    assert_eq!(got, vec![None, None, Some(b"second".to_vec())], "entries and counters expire");
}
