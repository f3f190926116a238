//! CDT map operations: the msgpack `[op, args...]` payload of a CDT read or
//! modify bin op, applied to a map bin with the results and result codes of
//! the server's `particle_map.c`. Only top-level maps (no context) and the
//! operations a session store needs are implemented; any other map op is a
//! parameter error.

use crate::msgpack::Reader;
use crate::result_code::{
    BIN_TYPE_ERROR, ELEMENT_EXISTS, ELEMENT_NOT_FOUND, OP_NOT_APPLICABLE, PARAMETER_ERROR,
    ResultCode,
};
use crate::value::{
    MAP_FLAG_K_ORDERED, MAP_FLAG_PRESERVE_ORDER, MAP_ORDER_MASK, Map, Value, canonical_cmp,
};

// Op codes (`as_cdt_optype`).
const SET_TYPE: i64 = 64;
const PUT: i64 = 67;
const PUT_ITEMS: i64 = 68;
const INCREMENT: i64 = 73;
const DECREMENT: i64 = 74;
const CLEAR: i64 = 75;
const REMOVE_BY_KEY: i64 = 76;
const SIZE: i64 = 96;
const GET_BY_KEY: i64 = 97;

// Map write flags (the `modify` argument of put and put_items).
const NO_OVERWRITE: u64 = 0x01;
const NO_CREATE: u64 = 0x02;
const NO_FAIL: u64 = 0x04;
const DO_PARTIAL: u64 = 0x08;

// Return types.
const RETURN_NONE: u64 = 0;
const RETURN_INDEX: u64 = 1;
const RETURN_REVERSE_INDEX: u64 = 2;
const RETURN_RANK: u64 = 3;
const RETURN_REVERSE_RANK: u64 = 4;
const RETURN_COUNT: u64 = 5;
const RETURN_KEY: u64 = 6;
const RETURN_VALUE: u64 = 7;
const RETURN_KEY_VALUE: u64 = 8;
const RETURN_EXISTS: u64 = 13;
const RETURN_UNORDERED_MAP: u64 = 16;
const RETURN_ORDERED_MAP: u64 = 17;
const RETURN_INVERTED: u64 = 0x1_0000;

/// The outcome of a map modify op.
#[derive(Debug, PartialEq)]
pub(crate) struct Modified {
    /// The map to store in the bin; `None` leaves the bin as it was (an op
    /// that changes nothing never creates the bin).
    pub(crate) map: Option<Map>,
    /// The op's answer; `None` answers nothing (nil under respond-all-ops).
    pub(crate) result: Option<Value>,
}

/// Applies a CDT modify payload to the bin's current value.
pub(crate) fn modify(bin: Option<&Value>, payload: &[u8]) -> Result<Modified, ResultCode> {
    let (op, args) = parse(payload)?;
    let existing = match bin {
        None => None,
        Some(Value::Map(map)) => Some(map.clone()),
        Some(_) => return Err(BIN_TYPE_ERROR),
    };
    match op {
        SET_TYPE => {
            arity(&args, 1, 1)?;
            let flags = flag(&args[0])?;
            // Order bits 0, 1 or 3, optionally with the persisted-index bit.
            if !matches!(flags & !0x10, 0 | 1 | 3) {
                return Err(OP_NOT_APPLICABLE);
            }
            let mut map = existing.unwrap_or_default();
            map.flags = flags as u8 & MAP_ORDER_MASK;
            Ok(stored(map, None))
        }
        PUT => {
            arity(&args, 2, 4)?;
            let control = Control::new(args.get(3))?;
            let created = existing.is_none();
            let mut map = existing_or_new(existing, args.get(2))?;
            let key = map_key(&args[0])?;
            match check_write(&map, key, control)? {
                Write::Apply => map.insert(key.clone(), args[1].clone()),
                Write::Skip if created => return Ok(untouched(Some(size(&map)))),
                Write::Skip => {}
            }
            let result = size(&map);
            Ok(stored(map, Some(result)))
        }
        PUT_ITEMS => {
            arity(&args, 1, 3)?;
            let Value::Map(items) = &args[0] else {
                return Err(PARAMETER_ERROR);
            };
            let control = Control::new(args.get(2))?;
            let created = existing.is_none();
            let mut map = existing_or_new(existing, args.get(1))?;
            let mut accepted = Vec::with_capacity(items.len());
            for (key, value) in items.entries() {
                match check_write(&map, key, control)? {
                    Write::Apply => accepted.push((key.clone(), value.clone())),
                    Write::Skip if control.partial => {}
                    // Without PARTIAL one denied item cancels the whole op.
                    Write::Skip => {
                        accepted.clear();
                        break;
                    }
                }
            }
            if accepted.is_empty() && created {
                return Ok(untouched(Some(size(&map))));
            }
            accepted.into_iter().for_each(|(k, v)| map.insert(k, v));
            let result = size(&map);
            Ok(stored(map, Some(result)))
        }
        INCREMENT | DECREMENT => {
            arity(&args, 1, 3)?;
            let key = map_key(&args[0])?.clone();
            let mut delta = match args.get(1) {
                // No delta means 1, typed by the existing value.
                None | Some(Value::Nil) => Delta::Int(1),
                Some(Value::Int(i)) => Delta::Int(*i),
                Some(Value::Float(f)) => Delta::Float(*f),
                Some(_) => return Err(PARAMETER_ERROR),
            };
            if op == DECREMENT {
                delta = match delta {
                    Delta::Int(i) => Delta::Int(i.wrapping_neg()),
                    Delta::Float(f) => Delta::Float(-f),
                };
            }
            let mut map = existing_or_new(existing, args.get(2))?;
            // `cdt_calc_delta_add`: the existing value keeps its type and
            // integers wrap on overflow; a missing key starts from zero.
            let value = match map.find(&key).map(|i| &map.entries()[i].1) {
                Ok(Value::Int(current)) => Value::Int(current.wrapping_add(match delta {
                    Delta::Int(d) => d,
                    Delta::Float(d) => d as i64,
                })),
                Ok(Value::Float(current)) => Value::Float(
                    current
                        + match delta {
                            Delta::Int(d) => d as f64,
                            Delta::Float(d) => d,
                        },
                ),
                Ok(_) => return Err(PARAMETER_ERROR),
                Err(_) => match delta {
                    Delta::Int(d) => Value::Int(d),
                    Delta::Float(d) => Value::Float(d),
                },
            };
            map.insert(key, value.clone());
            Ok(stored(map, Some(value)))
        }
        CLEAR => {
            arity(&args, 0, 0)?;
            Ok(match existing {
                None => untouched(None),
                Some(mut map) => {
                    map.clear();
                    stored(map, None)
                }
            })
        }
        REMOVE_BY_KEY => {
            arity(&args, 2, 2)?;
            let return_type = flag(&args[0])?;
            let Some(mut map) = existing else {
                return Ok(untouched(None));
            };
            let found = map.find(&args[1]).ok();
            let result = single_result(return_type, &map, found)?;
            if let Some(index) = found {
                map.remove(index);
            }
            Ok(stored(map, result))
        }
        _ => Err(PARAMETER_ERROR),
    }
}

/// Answers a CDT read payload from the bin's value.
pub(crate) fn read(bin: &Value, payload: &[u8]) -> Result<Option<Value>, ResultCode> {
    let (op, args) = parse(payload)?;
    let Value::Map(map) = bin else {
        return Err(BIN_TYPE_ERROR);
    };
    match op {
        SIZE => {
            arity(&args, 0, 0)?;
            Ok(Some(size(map)))
        }
        GET_BY_KEY => {
            arity(&args, 2, 2)?;
            let return_type = flag(&args[0])?;
            single_result(return_type, map, map.find(&args[1]).ok())
        }
        _ => Err(PARAMETER_ERROR),
    }
}

/// Splits `[op, args...]`. A context wrapper (`[0xff, ctx, op]`) parses as
/// op 255, which no branch accepts: nested CDT operations are not supported.
fn parse(payload: &[u8]) -> Result<(i64, Vec<Value>), ResultCode> {
    let mut reader = Reader::new(payload);
    let count = reader.array_len()?;
    let Some(arg_count) = count.checked_sub(1) else {
        return Err(PARAMETER_ERROR);
    };
    let Value::Int(op) = reader.value()? else {
        return Err(PARAMETER_ERROR);
    };
    let args = (0..arg_count)
        .map(|_| reader.value())
        .collect::<Result<Vec<_>, _>>()?;
    if !reader.is_empty() {
        return Err(PARAMETER_ERROR);
    }
    Ok((op, args))
}

/// The server's argument count check: too few or too many is an error.
fn arity(args: &[Value], required: usize, max: usize) -> Result<(), ResultCode> {
    if (required..=max).contains(&args.len()) {
        Ok(())
    } else {
        Err(PARAMETER_ERROR)
    }
}

/// Flags, counts and return types are unsigned integers.
fn flag(arg: &Value) -> Result<u64, ResultCode> {
    match arg {
        Value::Int(i) => u64::try_from(*i).map_err(|_| PARAMETER_ERROR),
        _ => Err(PARAMETER_ERROR),
    }
}

fn map_key(arg: &Value) -> Result<&Value, ResultCode> {
    if arg.is_map_key() {
        Ok(arg)
    } else {
        Err(PARAMETER_ERROR)
    }
}

/// The bin's map, or a new one with the order the op's policy asks for.
fn existing_or_new(existing: Option<Map>, order: Option<&Value>) -> Result<Map, ResultCode> {
    let order = order.map(flag).transpose()?.unwrap_or(0);
    Ok(existing.unwrap_or_else(|| Map::new(order as u8 & MAP_ORDER_MASK)))
}

fn size(map: &Map) -> Value {
    Value::Int(map.len() as i64)
}

fn stored(map: Map, result: Option<Value>) -> Modified {
    Modified {
        map: Some(map),
        result,
    }
}

fn untouched(result: Option<Value>) -> Modified {
    Modified { map: None, result }
}

#[derive(Clone, Copy)]
enum Delta {
    Int(i64),
    Float(f64),
}

#[derive(Clone, Copy)]
struct Control {
    overwrite: bool,
    create: bool,
    no_fail: bool,
    partial: bool,
}

impl Control {
    fn new(flags: Option<&Value>) -> Result<Self, ResultCode> {
        let flags = flags.map(flag).transpose()?.unwrap_or(0);
        Ok(Self {
            overwrite: flags & NO_OVERWRITE == 0,
            create: flags & NO_CREATE == 0,
            no_fail: flags & NO_FAIL != 0,
            partial: flags & DO_PARTIAL != 0,
        })
    }
}

enum Write {
    Apply,
    /// Denied by a write flag, with NO_FAIL set.
    Skip,
}

/// `map_add`'s policy check for one key.
fn check_write(map: &Map, key: &Value, control: Control) -> Result<Write, ResultCode> {
    let exists = map.find(key).is_ok();
    let denied = if exists {
        !control.overwrite
    } else {
        !control.create
    };
    match (denied, control.no_fail, exists) {
        (false, _, _) => Ok(Write::Apply),
        (true, true, _) => Ok(Write::Skip),
        (true, false, true) => Err(ELEMENT_EXISTS),
        (true, false, false) => Err(ELEMENT_NOT_FOUND),
    }
}

/// The answer of a single-key get or remove (`packed_map_build_result_by_key`
/// and `result_data_set_not_found`).
fn single_result(
    return_type: u64,
    map: &Map,
    found: Option<usize>,
) -> Result<Option<Value>, ResultCode> {
    // The server refuses INVERTED on single-key ops of unordered maps.
    if return_type & RETURN_INVERTED != 0 {
        return Err(OP_NOT_APPLICABLE);
    }
    let last = map.len() as i64 - 1;
    let entry = found.map(|i| &map.entries()[i]);
    let position = |to_int: &dyn Fn(usize) -> i64| Value::Int(found.map_or(-1, to_int));
    Ok(match return_type {
        RETURN_NONE => None,
        RETURN_INDEX => Some(position(&|i| i as i64)),
        RETURN_REVERSE_INDEX => Some(position(&|i| last - i as i64)),
        RETURN_RANK => Some(position(&|i| rank(map, i))),
        RETURN_REVERSE_RANK => Some(position(&|i| last - rank(map, i))),
        RETURN_COUNT => Some(Value::Int(i64::from(found.is_some()))),
        RETURN_EXISTS => Some(Value::Bool(found.is_some())),
        RETURN_KEY => entry.map(|(k, _)| k.clone()),
        RETURN_VALUE => entry.map(|(_, v)| v.clone()),
        RETURN_KEY_VALUE => Some(result_map(MAP_FLAG_PRESERVE_ORDER, entry)),
        RETURN_UNORDERED_MAP => Some(result_map(0, entry)),
        RETURN_ORDERED_MAP => Some(result_map(MAP_FLAG_K_ORDERED, entry)),
        _ => return Err(OP_NOT_APPLICABLE),
    })
}

/// The entry's position among the map's values (ties by key order).
fn rank(map: &Map, index: usize) -> i64 {
    let value = &map.entries()[index].1;
    map.entries()
        .iter()
        .enumerate()
        .filter(|(i, (_, v))| canonical_cmp(v, value).then(i.cmp(&index)).is_lt())
        .count() as i64
}

fn result_map(flags: u8, entry: Option<&(Value, Value)>) -> Value {
    let mut map = Map::new(flags);
    if let Some((k, v)) = entry {
        map.insert(k.clone(), v.clone());
    }
    Value::Map(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::encode;

    fn op(code: i64, args: Vec<Value>) -> Vec<u8> {
        encode(&Value::List([vec![Value::Int(code)], args].concat()))
    }

    fn s(text: &str) -> Value {
        Value::Str(text.as_bytes().to_vec())
    }

    fn map_of(pairs: &[(&str, Value)]) -> Value {
        let pairs = pairs.iter().map(|(k, v)| (s(k), v.clone())).collect();
        Value::Map(Map::from_pairs(0, pairs).unwrap())
    }

    fn apply(bin: Option<&Value>, payload: Vec<u8>) -> Result<(Option<Value>, Option<Value>), u8> {
        modify(bin, &payload).map(|m| (m.map.map(Value::Map), m.result))
    }

    #[test]
    fn put_creates_the_map_and_answers_its_size() {
        let (map, result) =
            apply(None, op(PUT, vec![s("b"), Value::Int(1), Value::Int(0)])).unwrap();
        assert_eq!(result, Some(Value::Int(1)));
        let (map, _) = apply(map.as_ref(), op(PUT, vec![s("a"), Value::Nil])).unwrap();
        assert_eq!(
            map,
            Some(map_of(&[("a", Value::Nil), ("b", Value::Int(1))]))
        );
    }

    #[test]
    fn put_write_flags_follow_the_server() {
        let bin = map_of(&[("a", Value::Int(1))]);
        let create_only = |flags: i64| {
            op(
                PUT,
                vec![s("a"), Value::Int(2), Value::Int(0), Value::Int(flags)],
            )
        };
        assert_eq!(apply(Some(&bin), create_only(1)), Err(ELEMENT_EXISTS));
        let (map, result) = apply(Some(&bin), create_only(1 | 4)).unwrap();
        assert_eq!((map, result), (Some(bin.clone()), Some(Value::Int(1))));
        let update_only = op(
            PUT,
            vec![s("z"), Value::Int(2), Value::Int(0), Value::Int(2)],
        );
        assert_eq!(apply(Some(&bin), update_only), Err(ELEMENT_NOT_FOUND));
        let denied_on_missing_bin = op(
            PUT,
            vec![s("z"), Value::Int(2), Value::Int(0), Value::Int(2 | 4)],
        );
        assert_eq!(
            apply(None, denied_on_missing_bin),
            Ok((None, Some(Value::Int(0))))
        );
        assert_eq!(
            apply(Some(&bin), op(PUT, vec![Value::Nil, Value::Int(1)])),
            Err(PARAMETER_ERROR)
        );
    }

    #[test]
    fn put_items_without_partial_is_all_or_nothing() {
        let bin = map_of(&[("a", Value::Int(1))]);
        let items = map_of(&[("a", Value::Int(9)), ("b", Value::Int(2))]);
        let with = |flags: i64| {
            op(
                PUT_ITEMS,
                vec![items.clone(), Value::Int(0), Value::Int(flags)],
            )
        };
        let (map, result) = apply(Some(&bin), with(1 | 4)).unwrap();
        assert_eq!((map, result), (Some(bin.clone()), Some(Value::Int(1))));
        let (map, _) = apply(Some(&bin), with(1 | 4 | 8)).unwrap();
        assert_eq!(
            map,
            Some(map_of(&[("a", Value::Int(1)), ("b", Value::Int(2))]))
        );
        let (map, _) = apply(Some(&bin), with(0)).unwrap();
        assert_eq!(map, Some(items));
    }

    #[test]
    fn increment_keeps_types_wraps_and_creates() {
        let bin = map_of(&[
            ("i", Value::Int(i64::MAX)),
            ("f", Value::Float(1.5)),
            ("s", s("x")),
        ]);
        let incr = |key: &str, delta: Value| {
            apply(Some(&bin), op(INCREMENT, vec![s(key), delta])).map(|r| r.1)
        };
        assert_eq!(incr("i", Value::Int(1)), Ok(Some(Value::Int(i64::MIN))));
        assert_eq!(
            incr("i", Value::Float(-2.7)),
            Ok(Some(Value::Int(i64::MAX - 2)))
        );
        assert_eq!(incr("f", Value::Int(2)), Ok(Some(Value::Float(3.5))));
        assert_eq!(incr("s", Value::Int(1)), Err(PARAMETER_ERROR));
        assert_eq!(incr("new", Value::Float(0.5)), Ok(Some(Value::Float(0.5))));
        assert_eq!(incr("i", s("1")), Err(PARAMETER_ERROR));
        let (_, result) = apply(None, op(DECREMENT, vec![s("k")])).unwrap();
        assert_eq!(result, Some(Value::Int(-1)));
        assert_eq!(
            apply(Some(&Value::Int(1)), op(INCREMENT, vec![s("k")])),
            Err(BIN_TYPE_ERROR)
        );
    }

    #[test]
    fn remove_and_get_answer_per_return_type() {
        let bin = map_of(&[("a", Value::Int(5)), ("b", Value::Int(3))]);
        let get = |rt: i64, key: &str| read(&bin, &op(GET_BY_KEY, vec![Value::Int(rt), s(key)]));
        assert_eq!(get(7, "a"), Ok(Some(Value::Int(5))));
        assert_eq!(get(7, "zz"), Ok(None));
        assert_eq!(get(5, "zz"), Ok(Some(Value::Int(0))));
        assert_eq!(get(1, "b"), Ok(Some(Value::Int(1))));
        assert_eq!(get(3, "a"), Ok(Some(Value::Int(1))));
        assert_eq!(get(4, "a"), Ok(Some(Value::Int(0))));
        assert_eq!(get(13, "a"), Ok(Some(Value::Bool(true))));
        let Ok(Some(Value::Map(kv))) = get(8, "a") else {
            panic!("no key-value map")
        };
        assert_eq!(kv.flags, MAP_FLAG_PRESERVE_ORDER);
        assert_eq!(kv.entries(), [(s("a"), Value::Int(5))]);
        assert_eq!(get(7 | 0x1_0000, "a"), Err(OP_NOT_APPLICABLE));
        assert_eq!(get(9, "a"), Err(OP_NOT_APPLICABLE));

        let (map, result) =
            apply(Some(&bin), op(REMOVE_BY_KEY, vec![Value::Int(7), s("a")])).unwrap();
        assert_eq!(result, Some(Value::Int(5)));
        assert_eq!(map, Some(map_of(&[("b", Value::Int(3))])));
        assert_eq!(
            apply(None, op(REMOVE_BY_KEY, vec![Value::Int(5), s("a")])),
            Ok((None, None))
        );
    }

    #[test]
    fn size_clear_and_unknown_ops() {
        let bin = map_of(&[("a", Value::Int(5))]);
        assert_eq!(read(&bin, &op(SIZE, vec![])), Ok(Some(Value::Int(1))));
        let (map, result) = apply(Some(&bin), op(CLEAR, vec![])).unwrap();
        assert_eq!((map, result), (Some(map_of(&[])), None));
        assert_eq!(apply(None, op(CLEAR, vec![])), Ok((None, None)));
        assert_eq!(
            read(&bin, &op(PUT, vec![s("a"), Value::Int(1)])),
            Err(PARAMETER_ERROR)
        );
        assert_eq!(apply(Some(&bin), op(SIZE, vec![])), Err(PARAMETER_ERROR));
        assert_eq!(
            apply(Some(&bin), op(SIZE, vec![Value::Int(1)])),
            Err(PARAMETER_ERROR)
        );
        assert_eq!(read(&Value::Int(1), &op(SIZE, vec![])), Err(BIN_TYPE_ERROR));
        let with_context = encode(&Value::List(vec![
            Value::Int(0xff),
            Value::List(vec![]),
            Value::List(vec![]),
        ]));
        assert_eq!(read(&bin, &with_context), Err(PARAMETER_ERROR));
    }
}
