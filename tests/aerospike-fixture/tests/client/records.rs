//! Whole-record commands: put, get, exists, touch, delete, and the policies,
//! TTLs and limits around them.

use std::time::{Duration, Instant};

use aerospike::expressions::{eq, int_bin, int_val};
use aerospike::{
    Bins, ErrorKind, Expiration, GenerationPolicy, ReadPolicy, RecordExistsAction, ResultCode,
    Value, WritePolicy, as_bin, as_key, as_list, as_map, as_val,
};
use aerospike_fixture::FixtureConfig;

use crate::common::{code, connect, eventually, key, start};

#[tokio::test]
async fn every_value_type_round_trips_in_bin_order() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("types");
    let map = as_map!("x" => as_list!(1, "two", 3.5), 7 => as_map!("deep" => true));
    let bins = [
        as_bin!("int", -42),
        as_bin!("float", 1.25),
        as_bin!("str", "héllo"),
        as_bin!("blob", Value::Blob(vec![0, 255])),
        as_bin!("bool", true),
        as_bin!("list", as_list!(1, "a", Value::Nil)),
        as_bin!("map", map),
    ];
    client
        .put(&WritePolicy::default(), &key, &bins)
        .await
        .unwrap();

    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!((record.generation, record.expiration()), (1, 0));
    assert_eq!(record.time_to_live(), None, "default-ttl 0: never expires");
    let names: Vec<&String> = record.bins.keys().collect();
    let expected: Vec<&String> = bins.iter().map(|b| &b.name).collect();
    assert_eq!(names, expected);
    for bin in &bins {
        assert_eq!(record.bins[&bin.name], bin.value, "bin {}", bin.name);
    }

    let some = client
        .get(&ReadPolicy::default(), &key, ["int", "absent"])
        .await
        .unwrap();
    assert_eq!(some.bins.len(), 1, "a missing bin is left out");
    assert_eq!(some.bins["int"], Value::Int(-42));
    let header = client
        .get(&ReadPolicy::default(), &key, Bins::None)
        .await
        .unwrap();
    assert!(header.bins.is_empty());
    assert_eq!(header.generation, 1);
    assert!(client.exists(&ReadPolicy::default(), &key).await.unwrap());
    assert!(
        !client
            .exists(&ReadPolicy::default(), &crate::common::key("nobody"))
            .await
            .unwrap()
    );
    let missing = client
        .get(
            &ReadPolicy::default(),
            &crate::common::key("nobody"),
            Bins::All,
        )
        .await;
    assert_eq!(code(missing), ResultCode::KeyNotFoundError);
}

#[tokio::test]
async fn generation_counts_writes_and_guards_them() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("generation");
    let plain = WritePolicy::default();
    client.put(&plain, &key, &[as_bin!("a", 1)]).await.unwrap();
    client.put(&plain, &key, &[as_bin!("b", 2)]).await.unwrap();
    client.touch(&plain, &key).await.unwrap();
    let header = client
        .get(&ReadPolicy::default(), &key, Bins::None)
        .await
        .unwrap();
    assert_eq!(header.generation, 3, "touch is a write too");

    let mut guarded = WritePolicy {
        generation_policy: GenerationPolicy::ExpectGenEqual,
        generation: 2,
        ..WritePolicy::default()
    };
    let stale = client.put(&guarded, &key, &[as_bin!("a", 9)]).await;
    assert_eq!(code(stale), ResultCode::GenerationError);
    guarded.generation = 3;
    client
        .put(&guarded, &key, &[as_bin!("a", 9)])
        .await
        .unwrap();

    guarded.generation_policy = GenerationPolicy::ExpectGenGreater;
    guarded.generation = 4;
    let not_greater = client.put(&guarded, &key, &[as_bin!("a", 10)]).await;
    assert_eq!(code(not_greater), ResultCode::GenerationError);
    guarded.generation = 5;
    client
        .put(&guarded, &key, &[as_bin!("a", 10)])
        .await
        .unwrap();
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(record.generation, 5);
    assert_eq!(record.bins["a"], Value::Int(10));
    assert_eq!(
        record.bins["b"],
        Value::Int(2),
        "an update keeps other bins"
    );
}

#[tokio::test]
async fn record_exists_actions() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("exists");
    let with = |action| WritePolicy {
        record_exists_action: action,
        ..WritePolicy::default()
    };
    let update_only = client
        .put(
            &with(RecordExistsAction::UpdateOnly),
            &key,
            &[as_bin!("a", 1)],
        )
        .await;
    assert_eq!(code(update_only), ResultCode::KeyNotFoundError);
    let replace_only = client
        .put(
            &with(RecordExistsAction::ReplaceOnly),
            &key,
            &[as_bin!("a", 1)],
        )
        .await;
    assert_eq!(code(replace_only), ResultCode::KeyNotFoundError);

    let create_only = with(RecordExistsAction::CreateOnly);
    client
        .put(&create_only, &key, &[as_bin!("a", 1), as_bin!("b", 2)])
        .await
        .unwrap();
    let again = client.put(&create_only, &key, &[as_bin!("a", 1)]).await;
    assert_eq!(code(again), ResultCode::KeyExistsError);

    client
        .put(&with(RecordExistsAction::Replace), &key, &[as_bin!("c", 3)])
        .await
        .unwrap();
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(
        record.bins.keys().collect::<Vec<_>>(),
        ["c"],
        "replace drops other bins"
    );
    client
        .put(
            &with(RecordExistsAction::UpdateOnly),
            &key,
            &[as_bin!("d", 4)],
        )
        .await
        .unwrap();
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(record.bins.len(), 2);
    assert_eq!(record.generation, 3);
}

#[tokio::test]
async fn touch_and_delete() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("doomed");
    let policy = WritePolicy::default();
    assert_eq!(
        code(client.touch(&policy, &key).await),
        ResultCode::KeyNotFoundError
    );
    assert!(
        !client.delete(&policy, &key).await.unwrap(),
        "nothing to delete"
    );
    client.put(&policy, &key, &[as_bin!("a", 1)]).await.unwrap();
    assert!(client.delete(&policy, &key).await.unwrap());
    let gone = client.get(&ReadPolicy::default(), &key, Bins::All).await;
    assert_eq!(code(gone), ResultCode::KeyNotFoundError);

    // Writing nil to the last bin deletes the record.
    client.put(&policy, &key, &[as_bin!("a", 1)]).await.unwrap();
    client
        .put(&policy, &key, &[as_bin!("a", None)])
        .await
        .unwrap();
    assert!(!client.exists(&ReadPolicy::default(), &key).await.unwrap());
    let nothing = client.put(&policy, &key, &[as_bin!("a", None)]).await;
    assert_eq!(code(nothing), ResultCode::KeyNotFoundError);
}

#[tokio::test]
async fn records_expire_after_their_ttl() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let (polled, swept) = (key("short-lived"), key("swept"));
    let ttl = WritePolicy {
        expiration: Expiration::Seconds(1),
        ..WritePolicy::default()
    };
    let written = Instant::now();
    client.put(&ttl, &polled, &[as_bin!("a", 1)]).await.unwrap();
    client.put(&ttl, &swept, &[as_bin!("a", 1)]).await.unwrap();
    let record = client
        .get(&ReadPolicy::default(), &polled, Bins::All)
        .await
        .unwrap();
    assert!(record.time_to_live().unwrap() <= Duration::from_secs(1));

    // Void-times have second granularity: gone 1 to 2 s after the write.
    let err = eventually("the record to expire", async || {
        client
            .get(&ReadPolicy::default(), &polled, Bins::All)
            .await
            .err()
    })
    .await;
    assert_eq!(err.server_result_code(), Some(ResultCode::KeyNotFoundError));
    // A lower bound: load only lengthens the wait, so it cannot fail on a
    // slow machine, while a record that expired early would.
    assert!(written.elapsed() >= Duration::from_millis(900));
    eventually(
        "the other record to be swept without being asked for",
        async || (fixture.record_count() == 0).then_some(()),
    )
    .await;
    client
        .put(&WritePolicy::default(), &polled, &[as_bin!("b", 2)])
        .await
        .unwrap();
    let fresh = client
        .get(&ReadPolicy::default(), &polled, Bins::All)
        .await
        .unwrap();
    assert_eq!(fresh.generation, 1, "an expired record is created anew");
    assert_eq!(fresh.bins.len(), 1);
}

#[tokio::test]
async fn touch_ttl_modes() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("ttl-modes");
    let with = |expiration| WritePolicy {
        expiration,
        ..WritePolicy::default()
    };
    let ttl_of = async || {
        let record = client
            .get(&ReadPolicy::default(), &key, Bins::None)
            .await
            .unwrap();
        record.time_to_live()
    };
    client
        .put(&with(Expiration::Seconds(100)), &key, &[as_bin!("a", 1)])
        .await
        .unwrap();
    client
        .touch(&with(Expiration::DontUpdate), &key)
        .await
        .unwrap();
    assert!(ttl_of().await.unwrap() > Duration::from_secs(90));
    // The namespace default (default-ttl 0) means "never expire".
    client
        .touch(&with(Expiration::NamespaceDefault), &key)
        .await
        .unwrap();
    assert_eq!(ttl_of().await, None);
    client
        .touch(&with(Expiration::Seconds(50)), &key)
        .await
        .unwrap();
    assert!(ttl_of().await.unwrap() <= Duration::from_secs(50));
    client.touch(&with(Expiration::Never), &key).await.unwrap();
    assert_eq!(ttl_of().await, None);
}

#[tokio::test]
async fn forbid_ttl_refuses_writes_that_set_one() {
    let fixture = start(FixtureConfig {
        forbid_ttl: true,
        ..FixtureConfig::default()
    });
    let client = connect(&fixture).await;
    let key = key("no-ttl");
    let with = |expiration| WritePolicy {
        expiration,
        ..WritePolicy::default()
    };
    let put = client
        .put(&with(Expiration::Seconds(60)), &key, &[as_bin!("a", 1)])
        .await;
    assert_eq!(code(put), ResultCode::FailForbidden);
    client
        .put(
            &with(Expiration::NamespaceDefault),
            &key,
            &[as_bin!("a", 1)],
        )
        .await
        .unwrap();
    client
        .put(&with(Expiration::Never), &key, &[as_bin!("a", 2)])
        .await
        .unwrap();
    client
        .touch(&with(Expiration::DontUpdate), &key)
        .await
        .unwrap();
    let touch = client.touch(&with(Expiration::Seconds(60)), &key).await;
    assert_eq!(code(touch), ResultCode::FailForbidden);
    let ops = [aerospike::operations::add(&as_bin!("a", 1))];
    let operate = client
        .operate(&with(Expiration::Seconds(60)), &key, &ops)
        .await;
    assert_eq!(code(operate), ResultCode::FailForbidden);
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(
        (record.bins["a"].clone(), record.generation),
        (Value::Int(2), 3)
    );
}

#[tokio::test]
async fn records_over_the_size_limit_are_refused() {
    let fixture = start(FixtureConfig {
        max_record_bytes: 4096,
        ..FixtureConfig::default()
    });
    let client = connect(&fixture).await;
    let key = key("big");
    let policy = WritePolicy::default();
    client
        .put(&policy, &key, &[as_bin!("a", Value::Blob(vec![1; 2000]))])
        .await
        .unwrap();
    let too_big = client
        .put(&policy, &key, &[as_bin!("b", Value::Blob(vec![1; 3000]))])
        .await;
    assert_eq!(code(too_big), ResultCode::RecordTooBig);
    let record = client
        .get(&ReadPolicy::default(), &key, Bins::All)
        .await
        .unwrap();
    assert_eq!(
        (record.bins.len(), record.generation),
        (1, 1),
        "nothing was written"
    );
}

#[tokio::test]
async fn record_bytes_show_what_is_stored() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("dumped");
    let bins = [
        as_bin!("top", "top-level-text"),
        as_bin!("nested", as_map!("k" => as_list!("deep-text"))),
    ];
    client
        .put(&WritePolicy::default(), &key, &bins)
        .await
        .unwrap();
    let dump = fixture.record_bytes();
    assert_eq!(dump.len(), 1);
    let holds = |text: &str| dump[0].windows(text.len()).any(|w| w == text.as_bytes());
    for text in ["sessions", "top", "top-level-text", "nested", "deep-text"] {
        assert!(
            holds(text),
            "{text:?} in {:?}",
            String::from_utf8_lossy(&dump[0])
        );
    }
    assert!(!holds("absent-text"));
    client.delete(&WritePolicy::default(), &key).await.unwrap();
    assert!(fixture.record_bytes().is_empty());
}

#[tokio::test]
async fn compressed_commands_and_replies() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("compressed");
    let text = "session data ".repeat(1000);
    let mut write = WritePolicy::default();
    write.base_policy.use_compression = true;
    client
        .put(&write, &key, &[as_bin!("text", text.as_str())])
        .await
        .unwrap();
    let mut read = ReadPolicy::default();
    read.base_policy.use_compression = true;
    let record = client.get(&read, &key, Bins::All).await.unwrap();
    assert_eq!(record.bins["text"], Value::from(text));
}

#[tokio::test]
async fn unsupported_features_are_parameter_errors() {
    let fixture = start(FixtureConfig::default());
    let client = connect(&fixture).await;
    let key = key("filtered");
    client
        .put(&WritePolicy::default(), &key, &[as_bin!("a", 1)])
        .await
        .unwrap();
    let mut filtered = ReadPolicy::default();
    filtered.base_policy.filter_expression = Some(eq(int_bin("a"), int_val(1)));
    let result = client.get(&filtered, &key, Bins::All).await;
    assert_eq!(code(result), ResultCode::ParameterError);

    // A namespace the node does not serve never reaches it: the client finds
    // no partition map for it.
    let elsewhere = as_key!("other", "sessions", "k");
    let err = client
        .get(&ReadPolicy::default(), &elsewhere, Bins::All)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::InvalidNamespace), "{err}");
}
