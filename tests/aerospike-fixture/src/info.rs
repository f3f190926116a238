//! The info protocol (proto type 1): newline-terminated commands, each answered
//! with `command<TAB>value<LF>`. It answers what the 3.0.0 client asks while it
//! seeds, validates and tends a node, describing one node that owns all 4096
//! partitions of every namespace (AP mode, replication factor 1) and has no
//! peers. It also truncates, which tests use to clean up after themselves.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::store::{Database, Namespace};

pub(crate) const PROTO_TYPE_INFO: u8 = 1;

/// The server release whose behaviour the fixture follows (8.1.2.0 CE). The
/// client reads features off it: at 8.1 it sends `user-agent-set`.
const BUILD: &str = "8.1.2.0";
/// Nothing in the fixture's cluster ever changes, so every generation stays.
const GENERATION: &str = "1";
/// One bit per partition: 4096 bits, all set.
const PARTITION_BITMAP: [u8; 4096 / 8] = [0xff; 4096 / 8];

/// What the info commands say about this node.
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) port: u16,
    /// Security (users) is an Enterprise feature.
    pub(crate) enterprise: bool,
}

/// The reply frame for an info request body.
pub(crate) fn respond(body: &[u8], node: &Node, db: &Database, authenticated: bool) -> Vec<u8> {
    let mut text = String::new();
    if authenticated {
        // Like the server, only complete (newline-terminated) commands count.
        let commands = body.split(|&b| b == b'\n');
        let complete = body.iter().filter(|&&b| b == b'\n').count();
        for command in commands.take(complete) {
            let command = String::from_utf8_lossy(command);
            text.push_str(&command);
            text.push('\t');
            text.push_str(&answer(&command, node, db));
            text.push('\n');
        }
    } else {
        text.push_str("ERROR:80:not authenticated\n");
    }
    let size = text.len() as u64;
    let proto = size | (2u64 << 56) | (u64::from(PROTO_TYPE_INFO) << 48);
    [&proto.to_be_bytes()[..], text.as_bytes()].concat()
}

fn answer(command: &str, node: &Node, db: &Database) -> String {
    let namespaces = db.namespaces();
    // `name/arg...:key=value;...`: the name ends at the first separator.
    let (name, params) = command
        .find(['/', ':', ';'])
        .map_or((command, ""), |at| (&command[..at], &command[at + 1..]));
    let edition = if node.enterprise {
        "Enterprise"
    } else {
        "Community"
    };
    let per_namespace = |value: &dyn Fn(&Namespace) -> String| {
        namespaces
            .iter()
            .map(|ns| format!("{}:{}", ns.name, value(ns)))
            .collect::<Vec<_>>()
            .join(";")
    };
    match name {
        "node" => node.name.clone(),
        // The server's answer when no cluster name is configured.
        "cluster-name" => "null".into(),
        "build" => BUILD.into(),
        "edition" => format!("Aerospike {edition} Edition"),
        "version" => format!("Aerospike {edition} Edition build {BUILD}"),
        "features" => "batch-any;batch-index;blob-bits;cdt-index;cdt-list;cdt-map;\
            cluster-stable;float;geo;sindex-exists;peers;pipelining;pquery;pscans;\
            query-show;relaxed-sc;replicas;replicas-all;replicas-master;replicas-max;\
            truncate-namespace;udf"
            .into(),
        "partition-generation" | "peers-generation" | "rebalance-generation" => GENERATION.into(),
        // `generation,default-port,[peers]`: a cluster of one.
        "peers-clear-std" | "peers-clear-alt" | "peers-tls-std" | "peers-tls-alt" => {
            format!("{GENERATION},{},[]", node.port)
        }
        "service-clear-std" | "service-clear-alt" => format!("127.0.0.1:{}", node.port),
        "service-tls-std" | "service-tls-alt" => String::new(),
        // `ns:regime,replicas,bitmap;...`: regime 0 is AP mode.
        "replicas" => {
            let bitmap = STANDARD.encode(PARTITION_BITMAP);
            per_namespace(&|_| format!("0,1,{bitmap}"))
        }
        "replicas-all" => {
            let bitmap = STANDARD.encode(PARTITION_BITMAP);
            per_namespace(&|_| format!("1,{bitmap}"))
        }
        "rack-ids" => per_namespace(&|_| "0".into()),
        "namespaces" => namespaces
            .iter()
            .map(|ns| ns.name.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        "namespace" => match namespaces.iter().find(|ns| ns.name == params) {
            Some(ns) => format!(
                "effective_replication_factor=1;replication-factor=1;strong-consistency=false;\
                 default-ttl=0;nsup-period={};allow-ttl-without-nsup=false",
                if ns.forbid_ttl { 0 } else { 120 }
            ),
            None => "ERROR:20:namespace not found".into(),
        },
        // `sets/ns/set`: the set's statistics, `:`-separated; nothing for a
        // set that never had a record.
        "sets" => {
            let (namespace, set) = params.split_once('/').unwrap_or((params, ""));
            match db.namespace(namespace.as_bytes()) {
                Some((index, _)) => match db.set_size(index, set.as_bytes()) {
                    (0, _) => String::new(),
                    (objects, bytes) => format!(
                        "objects={objects}:tombstones=0:data_used_bytes={bytes}:truncate_lut=0;"
                    ),
                },
                None => "ns_type=unknown".into(),
            }
        }
        "user-agent-set" => "ok".into(),
        // `truncate:namespace=ns;set=s[;lut=nanos]`; the fixture keeps no
        // last-update times, so a `lut` truncates everything, like lut=now.
        "truncate" | "truncate-namespace" => {
            let param = |key: &str| {
                params
                    .split(';')
                    .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            };
            let set = param("set").filter(|_| name == "truncate");
            match param("namespace").and_then(|ns| db.namespace(ns.as_bytes())) {
                Some((index, _)) => {
                    db.truncate(index, set.map(str::as_bytes));
                    "ok".into()
                }
                None => "ERROR:20:namespace not found".into(),
            }
        }
        // What 8.1 answers for a command it does not know.
        _ => "ERROR:4:unrecognized command".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record;

    fn node() -> Node {
        Node {
            name: "BB9000000000BB8".into(),
            port: 3000,
            enterprise: false,
        }
    }

    fn database() -> Database {
        let namespaces = vec![
            Namespace {
                name: "test".into(),
                forbid_ttl: true,
            },
            Namespace {
                name: "bar".into(),
                forbid_ttl: false,
            },
        ];
        Database::new(namespaces, 1 << 20)
    }

    fn ask(body: &str, authenticated: bool) -> String {
        ask_db(&database(), body, authenticated)
    }

    fn ask_db(db: &Database, body: &str, authenticated: bool) -> String {
        let reply = respond(body.as_bytes(), &node(), db, authenticated);
        assert_eq!(&reply[..2], [2, 1]);
        let size = u64::from_be_bytes(reply[..8].try_into().unwrap()) & 0xffff_ffff_ffff;
        assert_eq!(size as usize, reply.len() - 8);
        String::from_utf8(reply[8..].to_vec()).unwrap()
    }

    #[test]
    fn tend_commands_describe_a_single_node() {
        let reply = ask("node\npeers-clear-std\npartition-generation\nbuild\n", true);
        assert_eq!(
            reply,
            "node\tBB9000000000BB8\npeers-clear-std\t1,3000,[]\n\
             partition-generation\t1\nbuild\t8.1.2.0\n"
        );
    }

    #[test]
    fn replicas_give_every_partition_to_this_node() {
        let reply = ask("replicas\n", true);
        let value = reply.strip_prefix("replicas\t").unwrap().trim_end();
        let (test, bar) = value.split_once(';').unwrap();
        assert!(bar.starts_with("bar:0,1,"));
        let bitmap = STANDARD
            .decode(test.strip_prefix("test:0,1,").unwrap())
            .unwrap();
        assert_eq!(bitmap, [0xff; 512]);
    }

    #[test]
    fn parameters_unknown_commands_and_partial_lines() {
        let reply = ask(
            "namespace/test\nbogus\nuser-agent-set:value=eA==\nnode",
            true,
        );
        assert_eq!(
            reply,
            "namespace/test\teffective_replication_factor=1;replication-factor=1;\
             strong-consistency=false;default-ttl=0;nsup-period=0;allow-ttl-without-nsup=false\n\
             bogus\tERROR:4:unrecognized command\nuser-agent-set:value=eA==\tok\n"
        );
    }

    #[test]
    fn truncate_empties_one_set_or_a_whole_namespace() {
        let db = database();
        for (digest, set) in [(1, b"a"), (2, b"b")] {
            db.lock()
                .insert((0, [digest; 20]), Record::new(Some(set.to_vec())));
        }
        db.lock().insert((1, [3; 20]), Record::new(None));
        let reply = ask_db(&db, "truncate:namespace=test;set=a;lut=0\n", true);
        assert_eq!(reply, "truncate:namespace=test;set=a;lut=0\tok\n");
        assert_eq!(db.record_count(), 2, "only set a of namespace test");
        ask_db(&db, "truncate-namespace:namespace=test\n", true);
        assert_eq!(db.record_count(), 1, "namespace bar is left alone");
        let reply = ask_db(&db, "truncate:namespace=nope;set=a\n", true);
        assert!(
            reply.ends_with("\tERROR:20:namespace not found\n"),
            "{reply}"
        );
    }

    #[test]
    fn unauthenticated_connections_get_an_error() {
        assert_eq!(ask("node\n", false), "ERROR:80:not authenticated\n");
    }
}
