//! Single-record commands: read, write (put, touch, operate), delete. The
//! order of checks and the answers follow the server's `read.c`, `write.c`
//! and `delete.c`, so a client sees the result codes a real node gives.

use crate::map_ops;
use crate::message::{
    INFO1_BATCH, INFO1_GET_ALL, INFO1_NO_BIN_DATA, INFO1_READ, INFO1_SHORT_QUERY,
    INFO2_CREATE_ONLY, INFO2_DELETE, INFO2_GENERATION, INFO2_GENERATION_GT, INFO2_RESPOND_ALL_OPS,
    INFO2_WRITE, INFO3_CREATE_OR_REPLACE, INFO3_REPLACE_ONLY, INFO3_UPDATE_ONLY, Op, Request,
    Response, ResponseOp,
};
use crate::result_code::{
    BIN_NAME_TOO_LONG, BIN_TYPE_ERROR, FAIL_FORBIDDEN, GENERATION_ERROR, KEY_EXISTS, KEY_NOT_FOUND,
    NAMESPACE_NOT_FOUND, OK, PARAMETER_ERROR, RECORD_TOO_BIG, ResultCode,
};
use crate::store::{Database, Digest, Namespace, Record, Records};
use crate::value::{PARTICLE_BLOB, PARTICLE_NULL, Value};

// Bin op codes (`AS_MSG_OP_*`).
const OP_READ: u8 = 1;
const OP_WRITE: u8 = 2;
const OP_CDT_READ: u8 = 3;
const OP_CDT_MODIFY: u8 = 4;
const OP_INCR: u8 = 5;
const OP_APPEND: u8 = 9;
const OP_PREPEND: u8 = 10;
const OP_TOUCH: u8 = 11;
const OP_DELETE_ALL: u8 = 14;

// Special TTLs in a write's header.
const TTL_NAMESPACE_DEFAULT: u32 = 0;
const TTL_NEVER_EXPIRE: u32 = u32::MAX;
const TTL_DONT_UPDATE: u32 = u32::MAX - 1;
const MAX_ALLOWED_TTL: u32 = 10 * 365 * 24 * 3600;
/// Bin names are at most 15 bytes.
const MAX_BIN_NAME: usize = 15;
/// `RECORD_MAX_BINS`; it also keeps every reply within its 16-bit op count.
const MAX_BINS: usize = 0x7fff;

/// Runs one command against the database; `now` is in seconds since the
/// Aerospike epoch.
pub(crate) fn execute(db: &Database, request: &Request<'_>, now: u32) -> Response {
    let Some((ns_index, namespace)) = request.namespace.and_then(|name| db.namespace(name)) else {
        return Response::error(NAMESPACE_NOT_FOUND);
    };
    // Filters, transactions, batches and queries are not implemented.
    let unsupported =
        request.has_unsupported_field || request.info1 & (INFO1_BATCH | INFO1_SHORT_QUERY) != 0;
    let Some(digest) = request.digest.filter(|_| !unsupported) else {
        return Response::error(PARAMETER_ERROR);
    };
    let command = Command {
        request,
        key: (ns_index, digest),
        namespace,
        now,
        max_record_bytes: db.max_record_bytes,
    };
    let mut records = db.lock();
    if request.info2 & INFO2_WRITE != 0 {
        if request.info2 & INFO2_DELETE != 0 {
            command.delete(&mut records)
        } else {
            command.write(&mut records)
        }
    } else if request.info1 & INFO1_READ != 0 {
        command.read(&mut records)
    } else {
        Response::error(PARAMETER_ERROR)
    }
}

struct Command<'a> {
    request: &'a Request<'a>,
    key: (usize, Digest),
    namespace: &'a Namespace,
    now: u32,
    max_record_bytes: usize,
}

impl Command<'_> {
    fn respond_all_ops(&self) -> bool {
        self.request.info2 & INFO2_RESPOND_ALL_OPS != 0
    }

    /// A nameless read with GET_ALL set reads every bin.
    fn is_read_all(&self, op: &Op<'_>) -> bool {
        op.code == OP_READ && op.name.is_empty() && self.request.info1 & INFO1_GET_ALL != 0
    }

    fn read(&self, records: &mut Records<'_>) -> Response {
        let request = self.request;
        let Some(record) = records.live(self.key, self.now) else {
            return Response::error(KEY_NOT_FOUND);
        };
        let fail = |code| Response::meta(code, record.generation, record.void_time);
        if request
            .set
            .is_some_and(|set| record.set.as_deref() != Some(set))
        {
            return fail(PARAMETER_ERROR);
        }
        let mut response = Response::meta(OK, record.generation, record.void_time);
        if request.info1 & INFO1_NO_BIN_DATA != 0 {
            return response;
        }
        if request.info1 & INFO1_GET_ALL != 0 {
            response.ops = all_bins(record);
            return response;
        }
        if request.ops.is_empty() {
            return fail(PARAMETER_ERROR);
        }
        for op in &request.ops {
            if op.name.len() > MAX_BIN_NAME {
                return fail(BIN_NAME_TOO_LONG);
            }
            match read_op(record, op, self.respond_all_ops()) {
                Err(code) => return fail(code),
                Ok(Some(value)) => response.ops.push(answer(op, value)),
                Ok(None) => {}
            }
        }
        response
    }

    fn delete(&self, records: &mut Records<'_>) -> Response {
        let Some(record) = records.live(self.key, self.now) else {
            return Response::error(KEY_NOT_FOUND);
        };
        if !self.generation_ok(record.generation) {
            return Response::error(GENERATION_ERROR);
        }
        records.remove(self.key);
        Response::error(OK)
    }

    fn generation_ok(&self, current: u16) -> bool {
        let (info2, expected) = (self.request.info2, self.request.generation);
        if info2 & INFO2_GENERATION != 0 {
            expected == u32::from(current)
        } else if info2 & INFO2_GENERATION_GT != 0 {
            expected > u32::from(current)
        } else {
            true
        }
    }

    /// Puts, touches and operates: `write_master()`.
    fn write(&self, records: &mut Records<'_>) -> Response {
        let request = self.request;
        let (must_not_create, is_replace) = match self.write_policies() {
            Ok(policies) => policies,
            Err(code) => return Response::error(code),
        };
        let existing = records.live(self.key, self.now);
        if must_not_create && existing.is_none() {
            return Response::error(KEY_NOT_FOUND);
        }
        // Errors from here on carry the record's metadata, as on the server.
        let (generation, void_time) = existing.map_or((0, 0), |r| (r.generation, r.void_time));
        let fail = |code| Response::meta(code, generation, void_time);
        let mut record = match existing {
            None => Record::new(request.set.map(<[u8]>::to_vec)),
            Some(record) => {
                if request.info2 & INFO2_CREATE_ONLY != 0 {
                    return fail(KEY_EXISTS);
                }
                record.clone()
            }
        };
        let created = existing.is_none();
        if !self.generation_ok(generation) {
            return fail(GENERATION_ERROR);
        }
        // An update must name the record's set, exactly.
        if !created && request.set != record.set.as_deref() {
            return fail(PARAMETER_ERROR);
        }
        let ttl = match request.ttl {
            TTL_DONT_UPDATE if created => TTL_NAMESPACE_DEFAULT,
            ttl => ttl,
        };
        if ttl > MAX_ALLOWED_TTL && ttl != TTL_NEVER_EXPIRE && ttl != TTL_DONT_UPDATE {
            return fail(PARAMETER_ERROR);
        }
        // `is_ttl_disallowed()`: with nsup-period 0 a positive TTL is refused
        // (so is the namespace default, but the fixture's default-ttl is 0).
        if self.namespace.forbid_ttl && (ttl as i32) > 0 {
            return fail(FAIL_FORBIDDEN);
        }

        record.void_time = match ttl {
            TTL_NAMESPACE_DEFAULT | TTL_NEVER_EXPIRE => 0,
            TTL_DONT_UPDATE => record.void_time,
            seconds => self.now.saturating_add(seconds),
        };
        // 16 bits, and 0 means "no record": 65535 wraps to 1.
        record.generation = record.generation.checked_add(1).unwrap_or(1);
        if is_replace {
            record.bins.clear();
        }

        let mut answers = Vec::new();
        for op in &request.ops {
            if let Err(code) = self.apply(&mut record, op, &mut answers) {
                return fail(code);
            }
        }

        if record.bins.len() > MAX_BINS {
            return fail(PARAMETER_ERROR);
        }
        if record.bins.is_empty() {
            // Deleting every bin deletes the record; there was nothing to delete
            // if it did not exist. Deletes answer without metadata.
            if created {
                return fail(KEY_NOT_FOUND);
            }
            records.remove(self.key);
            return Response {
                ops: answers,
                ..Response::error(OK)
            };
        }
        if record.stored_size() > self.max_record_bytes {
            return fail(RECORD_TOO_BIG);
        }
        let response = Response {
            ops: answers,
            ..Response::meta(OK, record.generation, record.void_time)
        };
        records.insert(self.key, record);
        response
    }

    /// `write_master_policies()`: flags that need a look at every op first.
    /// Returns (must not create, is replace).
    fn write_policies(&self) -> Result<(bool, bool), ResultCode> {
        let request = self.request;
        if request.ops.is_empty() {
            return Err(PARAMETER_ERROR);
        }
        let mut must_not_create = request.info3 & (INFO3_UPDATE_ONLY | INFO3_REPLACE_ONLY) != 0;
        let is_replace = request.info3 & (INFO3_CREATE_OR_REPLACE | INFO3_REPLACE_ONLY) != 0;
        let (mut has_read, mut has_read_all, mut answers_bins) = (false, false, false);
        for op in &request.ops {
            if op.code == OP_TOUCH {
                if is_replace {
                    return Err(PARAMETER_ERROR);
                }
                must_not_create = true;
                continue;
            }
            if op.name.len() > MAX_BIN_NAME {
                return Err(BIN_NAME_TOO_LONG);
            }
            match op.code {
                OP_WRITE if op.particle == PARTICLE_NULL && is_replace => {
                    return Err(PARAMETER_ERROR);
                }
                OP_INCR | OP_APPEND | OP_PREPEND | OP_DELETE_ALL | OP_CDT_MODIFY if is_replace => {
                    return Err(PARAMETER_ERROR);
                }
                OP_CDT_MODIFY => answers_bins = true,
                OP_READ if self.is_read_all(op) => {
                    if self.respond_all_ops() || has_read_all {
                        return Err(PARAMETER_ERROR);
                    }
                    has_read = true;
                    has_read_all = true;
                }
                OP_READ | OP_CDT_READ => {
                    has_read = true;
                    answers_bins = true;
                }
                // Unknown ops fail when applied, as on the server.
                _ => {}
            }
        }
        let get_all = request.info1 & INFO1_GET_ALL != 0;
        if (has_read && request.info1 & INFO1_READ == 0)
            || (has_read_all && answers_bins)
            || (get_all && !has_read_all)
        {
            return Err(PARAMETER_ERROR);
        }
        Ok((must_not_create, is_replace))
    }

    /// One op of a write, in order (`write_master_bin_ops_loop()`).
    fn apply(
        &self,
        record: &mut Record,
        op: &Op<'_>,
        answers: &mut Vec<ResponseOp>,
    ) -> Result<(), ResultCode> {
        let respond_all = self.respond_all_ops();
        match op.code {
            // The metadata was already advanced; a touch answers nothing.
            OP_TOUCH => {}
            OP_WRITE => {
                if op.particle == PARTICLE_NULL {
                    record.remove_bin(op.name);
                } else {
                    record.set_bin(op.name, Value::from_particle(op.particle, op.value)?);
                }
                if respond_all {
                    answers.push(answer(op, None));
                }
            }
            OP_INCR | OP_APPEND | OP_PREPEND => {
                let operand = Value::from_particle(op.particle, op.value)?;
                let value = match record.bin(op.name) {
                    // Every modify creates a missing bin with the operand.
                    None => operand,
                    Some(current) => modify_bin(op.code, current, operand)?,
                };
                record.set_bin(op.name, value);
                if respond_all {
                    answers.push(answer(op, None));
                }
            }
            OP_DELETE_ALL => {
                record.bins.clear();
                if respond_all {
                    answers.push(answer(op, None));
                }
            }
            OP_READ if self.is_read_all(op) => answers.extend(all_bins(record)),
            OP_CDT_MODIFY => {
                let modified = map_ops::modify(record.bin(op.name), op.value)?;
                if let Some(map) = modified.map {
                    record.set_bin(op.name, Value::Map(map));
                }
                if respond_all || modified.result.is_some() {
                    answers.push(answer(op, modified.result));
                }
            }
            OP_READ | OP_CDT_READ => {
                if let Some(value) = read_op(record, op, respond_all)? {
                    answers.push(answer(op, value));
                }
            }
            _ => return Err(PARAMETER_ERROR),
        }
        Ok(())
    }
}

/// A read op's answer: `None` when it answers nothing at all (a missing bin
/// without respond-all-ops), `Some(None)` for a nil answer.
fn read_op(
    record: &Record,
    op: &Op<'_>,
    respond_all: bool,
) -> Result<Option<Option<Value>>, ResultCode> {
    let bin = record.bin(op.name);
    match (op.code, bin) {
        (OP_READ, Some(value)) => Ok(Some(Some(value.clone()))),
        (OP_CDT_READ, Some(value)) => map_ops::read(value, op.value).map(Some),
        (OP_READ | OP_CDT_READ, None) => Ok(respond_all.then_some(None)),
        _ => Err(PARAMETER_ERROR),
    }
}

/// Add, append and prepend on an existing bin (`*_incr_from_wire`,
/// `*_append_from_wire`): integers wrap, anything else of the wrong type is a
/// bin type error.
fn modify_bin(code: u8, current: &Value, operand: Value) -> Result<Value, ResultCode> {
    match (code, current, operand) {
        (OP_INCR, Value::Int(a), Value::Int(b)) => Ok(Value::Int(a.wrapping_add(b))),
        (OP_INCR, Value::Float(a), Value::Float(b)) => Ok(Value::Float(a + b)),
        (OP_APPEND, Value::Str(a), Value::Str(b)) => Ok(Value::Str([&a[..], &b].concat())),
        (OP_PREPEND, Value::Str(a), Value::Str(b)) => Ok(Value::Str([b, a.clone()].concat())),
        (OP_APPEND, Value::Bytes(PARTICLE_BLOB, a), Value::Bytes(PARTICLE_BLOB, b)) => {
            Ok(Value::Bytes(PARTICLE_BLOB, [&a[..], &b].concat()))
        }
        (OP_PREPEND, Value::Bytes(PARTICLE_BLOB, a), Value::Bytes(PARTICLE_BLOB, b)) => {
            Ok(Value::Bytes(PARTICLE_BLOB, [b, a.clone()].concat()))
        }
        _ => Err(BIN_TYPE_ERROR),
    }
}

fn answer(op: &Op<'_>, value: Option<Value>) -> ResponseOp {
    ResponseOp {
        code: op.code,
        name: op.name.to_vec(),
        value,
    }
}

fn all_bins(record: &Record) -> Vec<ResponseOp> {
    record
        .bins
        .iter()
        .map(|(name, value)| ResponseOp {
            code: OP_READ,
            name: name.clone(),
            value: Some(value.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::encode;
    use crate::value::PARTICLE_STRING;

    const NOW: u32 = 1_000;

    fn database(forbid_ttl: bool) -> Database {
        let ns = Namespace {
            name: "test".into(),
            forbid_ttl,
        };
        Database::new(vec![ns], 1024)
    }

    fn request<'a>(info: [u8; 3], ttl: u32, ops: Vec<Op<'a>>) -> Request<'a> {
        Request {
            info1: info[0],
            info2: info[1],
            info3: info[2],
            generation: 0,
            ttl,
            namespace: Some(b"test"),
            set: Some(b"s"),
            digest: Some([1; 20]),
            has_unsupported_field: false,
            ops,
        }
    }

    fn op<'a>(code: u8, particle: u8, name: &'a [u8], value: &'a [u8]) -> Op<'a> {
        Op {
            code,
            particle,
            name,
            value,
        }
    }

    const INT: u8 = 1;

    fn put(db: &Database, name: &[u8], value: i64, ttl: u32) -> Response {
        let bytes = value.to_be_bytes();
        let ops = vec![op(OP_WRITE, INT, name, &bytes)];
        execute(db, &request([0, INFO2_WRITE, 0], ttl, ops), NOW)
    }

    fn get_all(db: &Database, now: u32) -> Response {
        execute(
            db,
            &request([INFO1_READ | INFO1_GET_ALL, 0, 0], 0, vec![]),
            now,
        )
    }

    #[test]
    fn generation_counts_writes_and_ttl_sets_void_time() {
        let db = database(false);
        assert_eq!(put(&db, b"a", 1, 0), Response::meta(OK, 1, 0));
        assert_eq!(put(&db, b"a", 2, 10), Response::meta(OK, 2, NOW + 10));
        assert_eq!(
            put(&db, b"a", 3, TTL_DONT_UPDATE),
            Response::meta(OK, 3, NOW + 10)
        );
        let read = get_all(&db, NOW + 10);
        assert_eq!(read.ops[0].value, Some(Value::Int(3)));
        assert_eq!(get_all(&db, NOW + 11), Response::error(KEY_NOT_FOUND));
        assert_eq!(
            put(&db, b"a", 1, 0).generation,
            1,
            "expired records are created anew"
        );
    }

    #[test]
    fn forbid_ttl_refuses_positive_ttls_only() {
        let db = database(true);
        assert_eq!(put(&db, b"a", 1, 5).result, FAIL_FORBIDDEN);
        assert_eq!(put(&db, b"a", 1, TTL_NEVER_EXPIRE).result, OK);
        assert_eq!(put(&db, b"a", 1, TTL_DONT_UPDATE).result, OK);
        assert_eq!(
            put(&db, b"a", 1, MAX_ALLOWED_TTL + 1).result,
            PARAMETER_ERROR
        );
    }

    #[test]
    fn record_exists_actions() {
        let db = database(false);
        let bytes = 1i64.to_be_bytes();
        let write = |info2: u8, info3: u8| {
            let ops = vec![op(OP_WRITE, INT, b"a", &bytes)];
            execute(&db, &request([0, INFO2_WRITE | info2, info3], 0, ops), NOW).result
        };
        assert_eq!(write(0, INFO3_UPDATE_ONLY), KEY_NOT_FOUND);
        assert_eq!(write(0, INFO3_REPLACE_ONLY), KEY_NOT_FOUND);
        assert_eq!(write(INFO2_CREATE_ONLY, 0), OK);
        assert_eq!(write(INFO2_CREATE_ONLY, 0), KEY_EXISTS);
        assert_eq!(write(0, INFO3_UPDATE_ONLY), OK);
        assert_eq!(write(0, INFO3_CREATE_OR_REPLACE), OK);
    }

    #[test]
    fn set_name_must_match_the_record() {
        let db = database(false);
        put(&db, b"a", 1, 0);
        let mut read = request([INFO1_READ | INFO1_GET_ALL, 0, 0], 0, vec![]);
        read.set = Some(b"other");
        assert_eq!(execute(&db, &read, NOW).result, PARAMETER_ERROR);
        read.set = None;
        assert_eq!(execute(&db, &read, NOW).result, OK);
    }

    #[test]
    fn respond_all_ops_answers_each_op_but_touch() {
        let db = database(false);
        let one = 1i64.to_be_bytes();
        let size = encode(&Value::List(vec![Value::Int(96)]));
        let ops = vec![
            op(OP_WRITE, INT, b"a", &one),
            op(OP_TOUCH, 0, b"", b""),
            op(OP_INCR, INT, b"a", &one),
            op(OP_READ, 0, b"a", b""),
            op(OP_READ, 0, b"missing", b""),
            op(OP_CDT_READ, PARTICLE_BLOB, b"m", &size),
        ];
        let info = [INFO1_READ, INFO2_WRITE | INFO2_RESPOND_ALL_OPS, 0];
        let response = execute(&db, &request(info, 0, ops), NOW);
        assert_eq!(response.result, KEY_NOT_FOUND, "touch needs the record");
        put(&db, b"a", 5, 0);
        let ops = vec![
            op(OP_WRITE, INT, b"a", &one),
            op(OP_TOUCH, 0, b"", b""),
            op(OP_INCR, INT, b"a", &one),
            op(OP_READ, 0, b"a", b""),
            op(OP_READ, 0, b"missing", b""),
            op(OP_CDT_READ, PARTICLE_BLOB, b"m", &size),
        ];
        let response = execute(&db, &request(info, 0, ops), NOW);
        let values: Vec<_> = response.ops.iter().map(|o| o.value.clone()).collect();
        assert_eq!(values, [None, None, Some(Value::Int(2)), None, None]);
        assert_eq!(response.generation, 2);
    }

    #[test]
    fn read_all_cannot_mix_with_answering_ops() {
        let db = database(false);
        put(&db, b"a", 5, 0);
        let ops = vec![op(OP_READ, 0, b"a", b""), op(OP_READ, 0, b"", b"")];
        let info = [INFO1_READ | INFO1_GET_ALL, INFO2_WRITE, 0];
        assert_eq!(
            execute(&db, &request(info, 0, ops), NOW).result,
            PARAMETER_ERROR
        );
    }

    #[test]
    fn bin_modify_types_and_overflow() {
        let db = database(false);
        put(&db, b"n", i64::MAX, 0);
        let add = |particle: u8, value: &[u8]| {
            let ops = vec![op(OP_INCR, particle, b"n", value)];
            execute(&db, &request([0, INFO2_WRITE, 0], 0, ops), NOW).result
        };
        assert_eq!(add(INT, &1i64.to_be_bytes()), OK);
        assert_eq!(get_all(&db, NOW).ops[0].value, Some(Value::Int(i64::MIN)));
        assert_eq!(add(2, &1.0f64.to_be_bytes()), BIN_TYPE_ERROR);
        assert_eq!(add(PARTICLE_STRING, b"x"), BIN_TYPE_ERROR);
    }

    #[test]
    fn deleting_all_bins_deletes_the_record() {
        let db = database(false);
        let nil_write = |db: &Database| {
            let ops = vec![op(OP_WRITE, PARTICLE_NULL, b"a", b"")];
            execute(db, &request([0, INFO2_WRITE, 0], 0, ops), NOW)
        };
        assert_eq!(nil_write(&db).result, KEY_NOT_FOUND);
        put(&db, b"a", 1, 0);
        assert_eq!(nil_write(&db), Response::error(OK));
        assert_eq!(db.record_count(), 0);
    }

    #[test]
    fn a_record_holds_at_most_32767_bins() {
        let ns = Namespace {
            name: "test".into(),
            forbid_ttl: false,
        };
        let db = Database::new(vec![ns], usize::MAX);
        let mut full = Record::new(Some(b"s".to_vec()));
        full.bins = (0..MAX_BINS)
            .map(|i| (i.to_string().into_bytes(), Value::Nil))
            .collect();
        db.lock().insert((0, [1; 20]), full);
        let ops = vec![op(OP_WRITE, PARTICLE_BLOB, b"one-more", b"")];
        let response = execute(&db, &request([0, INFO2_WRITE, 0], 0, ops), NOW);
        assert_eq!(response.result, PARAMETER_ERROR);
    }

    #[test]
    fn records_over_the_size_limit_are_refused() {
        let db = database(false);
        let big = vec![0; 2048];
        let ops = vec![op(OP_WRITE, PARTICLE_BLOB, b"a", &big)];
        let response = execute(&db, &request([0, INFO2_WRITE, 0], 0, ops), NOW);
        assert_eq!(response.result, RECORD_TOO_BIG);
    }

    #[test]
    fn unsupported_parts_are_parameter_errors() {
        let db = database(false);
        let mut with_filter = request([INFO1_READ | INFO1_GET_ALL, 0, 0], 0, vec![]);
        with_filter.has_unsupported_field = true;
        assert_eq!(execute(&db, &with_filter, NOW).result, PARAMETER_ERROR);
        let ops = vec![op(13, PARTICLE_BLOB, b"bits", b"")];
        let response = execute(&db, &request([0, INFO2_WRITE, 0], 0, ops), NOW);
        assert_eq!(response.result, PARAMETER_ERROR);
        let mut unknown_ns = request([INFO1_READ, 0, 0], 0, vec![]);
        unknown_ns.namespace = Some(b"nope");
        assert_eq!(execute(&db, &unknown_ns, NOW).result, NAMESPACE_NOT_FOUND);
    }
}
