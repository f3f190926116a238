//! Operate: bin ops and CDT map ops in one atomic command, answered the way
//! the server answers them, and the map semantics a session store relies on.

use std::collections::{BTreeMap, HashMap};

use aerospike::operations::{self, MapOrder, maps};
use aerospike::{
    Bins, MapPolicy, MapReturnType, MapWriteFlags, ReadPolicy, ResultCode, Value, WritePolicy,
    as_bin, as_map, as_val,
};
use aerospike_fixture::FixtureConfig;

use crate::common::{code, connect, key, start};

fn s(text: &str) -> Value {
    Value::from(text)
}

fn keys(map: &Value) -> Vec<Value> {
    match map {
        Value::OrderedMap(m) => m.keys().cloned().collect(),
        Value::SortedMap(m) => m.keys().cloned().collect(),
        other => panic!("not a map: {other:?}"),
    }
}

#[tokio::test]
async fn map_ops_answer_in_op_order() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("map");
    let policy = MapPolicy::default();
    let items = HashMap::from([(s("c"), Value::from(3)), (s("a"), Value::from(1))]);
    let ops = [
        maps::put(&policy, "m", s("b"), Value::from(2)),
        maps::put_items(&policy, "m", items),
        maps::increment_value(&policy, "m", s("a"), Value::from(10)),
        maps::size("m"),
        maps::get_by_key("m", s("a"), MapReturnType::VALUE),
        maps::get_by_key("m", s("zz"), MapReturnType::VALUE),
        maps::get_by_key("m", s("b"), MapReturnType::KEY_VALUE),
        maps::remove_by_key("m", s("c"), MapReturnType::VALUE),
        maps::get_by_key("m", s("c"), MapReturnType::COUNT),
        maps::get_by_key("m", s("b"), MapReturnType::EXISTS),
    ];
    let record = client
        .operate(&WritePolicy::default(), &key, &ops)
        .await
        .unwrap();
    let expected = vec![
        Value::from(1),
        Value::from(3),
        Value::from(11),
        Value::from(3),
        Value::from(11),
        Value::Nil,
        Value::KeyValueList(vec![(s("b"), Value::from(2))]),
        Value::from(3),
        Value::from(0),
        Value::from(true),
    ];
    assert_eq!(record.results.as_deref(), Some(&expected[..]));
    assert_eq!(record.bins["m"], Value::MultiResult(expected));
    assert_eq!(record.generation, 1);

    let stored = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(stored.bins["m"], as_map!("a" => 11, "b" => 2));
    assert!(
        matches!(stored.bins["m"], Value::OrderedMap(_)),
        "unordered maps"
    );
    assert_eq!(keys(&stored.bins["m"]), [s("a"), s("b")]);

    let clear = [maps::clear("m"), maps::size("m")];
    let record = client
        .operate(&WritePolicy::default(), &key, &clear)
        .await
        .unwrap();
    assert_eq!(
        record.bins["m"],
        Value::MultiResult(vec![Value::Nil, Value::from(0)])
    );
}

#[tokio::test]
async fn maps_come_back_in_key_order() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("order");
    let map = as_map!("b" => 1, 2 => 2, "a" => 3, Value::Blob(vec![0]) => 4, -5 => 5);
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("plain", map)])
        .await
        .unwrap();
    let sorted = MapPolicy::new(MapOrder::KeyOrdered, MapWriteFlags::DEFAULT);
    let items = HashMap::from([(s("z"), Value::from(1)), (s("m"), Value::from(2))]);
    let ops = [maps::put_items(&sorted, "sorted", items)];
    client
        .operate(&WritePolicy::default(), &key, &ops)
        .await
        .unwrap();

    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    let plain = &record.bins["plain"];
    assert!(matches!(plain, Value::OrderedMap(_)));
    let expected = [
        Value::from(-5),
        Value::from(2),
        s("a"),
        s("b"),
        Value::Blob(vec![0]),
    ];
    assert_eq!(keys(plain), expected, "integers, then strings, then blobs");
    let ordered = &record.bins["sorted"];
    assert!(matches!(ordered, Value::SortedMap(_)), "{ordered:?}");
    assert_eq!(keys(ordered), [s("m"), s("z")]);
}

#[tokio::test]
async fn increment_value_follows_the_server() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("counters");
    let map = as_map!("max" => i64::MAX, "f" => 1.5, "s" => "text");
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("m", map)])
        .await
        .unwrap();
    let policy = MapPolicy::default();
    let incr = async |k: &str, delta: Value| {
        let ops = [maps::increment_value(&policy, "m", s(k), delta)];
        client
            .operate(&WritePolicy::default(), &key, &ops)
            .await
            .map(|record| record.bins["m"].clone())
    };
    assert_eq!(
        incr("max", Value::from(1)).await.unwrap(),
        Value::from(i64::MIN),
        "wraps"
    );
    assert_eq!(
        code(incr("s", Value::from(1)).await),
        ResultCode::ParameterError
    );
    assert_eq!(
        incr("f", Value::from(2)).await.unwrap(),
        Value::from(3.5),
        "stays a float"
    );
    assert_eq!(
        incr("max", Value::from(2.9)).await.unwrap(),
        Value::from(i64::MIN + 2)
    );
    assert_eq!(
        incr("new", Value::from(5)).await.unwrap(),
        Value::from(5),
        "created"
    );
    assert_eq!(code(incr("new", s("1")).await), ResultCode::ParameterError);
    let ops = [maps::decrement_value(
        &policy,
        "m",
        s("new"),
        Value::from(7),
    )];
    let record = client
        .operate(&WritePolicy::default(), &key, &ops)
        .await
        .unwrap();
    assert_eq!(record.bins["m"], Value::from(-2));

    // On a missing bin the map is created; on another type it is an error.
    let ops = [maps::increment_value(
        &policy,
        "fresh",
        s("n"),
        Value::from(1),
    )];
    client
        .operate(&WritePolicy::default(), &key, &ops)
        .await
        .unwrap();
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("int", 1)])
        .await
        .unwrap();
    let ops = [maps::increment_value(
        &policy,
        "int",
        s("n"),
        Value::from(1),
    )];
    let wrong_type = client.operate(&WritePolicy::default(), &key, &ops).await;
    assert_eq!(code(wrong_type), ResultCode::BinTypeError);
    let wrong_type = client
        .operate(&WritePolicy::default(), &key, &[maps::size("int")])
        .await;
    assert_eq!(code(wrong_type), ResultCode::BinTypeError);
}

#[tokio::test]
async fn map_write_flags() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("flags");
    let put = async |flags, k: &str, v: i64| {
        let policy = MapPolicy::new(MapOrder::Unordered, flags);
        let ops = [maps::put(&policy, "m", s(k), Value::from(v))];
        client.operate(&WritePolicy::default(), &key, &ops).await
    };
    put(MapWriteFlags::DEFAULT, "a", 1).await.unwrap();
    let exists = put(MapWriteFlags::CREATE_ONLY, "a", 2).await;
    assert_eq!(code(exists), ResultCode::ElementExists);
    let quiet = put(MapWriteFlags::CREATE_ONLY | MapWriteFlags::NO_FAIL, "a", 2)
        .await
        .unwrap();
    assert_eq!(quiet.bins["m"], Value::from(1), "the size, unchanged");
    assert_eq!(quiet.generation, 2, "a denied put still writes the record");
    let missing = put(MapWriteFlags::UPDATE_ONLY, "b", 2).await;
    assert_eq!(code(missing), ResultCode::ElementNotFound);
    put(MapWriteFlags::UPDATE_ONLY, "a", 3).await.unwrap();
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(record.bins["m"], as_map!("a" => 3));
}

#[tokio::test]
async fn nil_map_values_and_the_clients_put_quirk() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("nils");
    let quiet = MapPolicy::new(MapOrder::Unordered, MapWriteFlags::NO_FAIL);
    let ops = [
        // With default flags the client leaves a nil value out, and the
        // server reads the order attribute (0) in its place.
        maps::put(&MapPolicy::default(), "m", s("dropped"), Value::Nil),
        maps::put(&quiet, "m", s("kept"), Value::Nil),
    ];
    client
        .operate(&WritePolicy::default(), &key, &ops)
        .await
        .unwrap();
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(
        record.bins["m"],
        as_map!("dropped" => 0, "kept" => Value::Nil)
    );
}

#[tokio::test]
async fn bin_ops_in_one_operate() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("operate");
    let policy = WritePolicy::default();
    client
        .put(&policy, &key, &[as_bin!("a", 1), as_bin!("s", "b")])
        .await
        .unwrap();
    let ops = [
        operations::put(&as_bin!("b", 2)),
        operations::add(&as_bin!("a", 5)),
        operations::get_bin("a"),
        operations::touch(),
        operations::append(&as_bin!("s", "c")),
        operations::prepend(&as_bin!("s", "a")),
        operations::get_bin("s"),
    ];
    let record = client.operate(&policy, &key, &ops).await.unwrap();
    assert_eq!(
        record.bins["a"],
        Value::MultiResult(vec![Value::Nil, Value::from(6)])
    );
    assert_eq!(record.bins["b"], Value::Nil);
    assert_eq!(
        record.bins["s"],
        Value::MultiResult(vec![Value::Nil, Value::Nil, s("abc")])
    );
    // The server answers every op but touch: one slot short of the op list.
    assert_eq!(record.results.as_ref().map(Vec::len), Some(ops.len() - 1));
    assert_eq!(record.generation, 2);

    let read_all = [operations::put(&as_bin!("c", 3)), operations::get()];
    let record = client.operate(&policy, &key, &read_all).await.unwrap();
    assert_eq!(record.bins.len(), 4);
    assert_eq!(record.bins["c"], Value::from(3));
    let mixed = [
        maps::size("m"),
        operations::put(&as_bin!("d", 4)),
        operations::get(),
    ];
    let mixed = client.operate(&policy, &key, &mixed).await;
    assert_eq!(
        code(mixed),
        ResultCode::ParameterError,
        "get() with answering ops"
    );

    // A read-only operate with get_header() answers no bins at all.
    let read_only = [operations::get_bin("c"), operations::get_header()];
    let record = client.operate(&policy, &key, &read_only).await.unwrap();
    assert!(record.bins.is_empty());
    assert_eq!(record.generation, 3);
    let record = client
        .operate(&policy, &key, &[operations::get_bin("c")])
        .await
        .unwrap();
    assert_eq!(record.bins["c"], Value::from(3));

    client
        .put(&policy, &key, &[as_bin!("n", i64::MAX)])
        .await
        .unwrap();
    let record = client
        .operate(
            &policy,
            &key,
            &[operations::add(&as_bin!("n", 1)), operations::get_bin("n")],
        )
        .await
        .unwrap();
    assert_eq!(
        record.bins["n"],
        Value::MultiResult(vec![Value::Nil, Value::from(i64::MIN)])
    );
    let float_add = client
        .operate(&policy, &key, &[operations::add(&as_bin!("n", 1.5))])
        .await;
    assert_eq!(code(float_add), ResultCode::BinTypeError);

    client
        .operate(&policy, &key, &[operations::delete()])
        .await
        .unwrap();
    assert!(!client.exists(&ReadPolicy::default(), &key).await.unwrap());
    let gone = client
        .operate(&policy, &key, &[operations::get_bin("a")])
        .await;
    assert_eq!(code(gone), ResultCode::KeyNotFoundError);
    let touch_missing = client.operate(&policy, &key, &[operations::touch()]).await;
    assert_eq!(code(touch_missing), ResultCode::KeyNotFoundError);
}

#[tokio::test]
async fn sorted_map_arguments_keep_their_flag() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("sorted-bin");
    let map: BTreeMap<Value, Value> = [(s("b"), Value::from(1)), (s("a"), Value::from(2))].into();
    client
        .put(
            &WritePolicy::default(),
            &key,
            &[as_bin!("m", Value::SortedMap(map))],
        )
        .await
        .unwrap();
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert!(matches!(record.bins["m"], Value::SortedMap(_)));
    let ops = [maps::get_by_key("m", s("a"), MapReturnType::ORDERED_MAP)];
    let record = client
        .operate(&WritePolicy::default(), &key, &ops)
        .await
        .unwrap();
    assert_eq!(record.bins["m"], as_map!("a" => 2));
}
