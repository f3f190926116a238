-- incr_field: adds to an integer field of a live session (absent counts as
-- 0) within the size limit, keeping the expiry. HINCRBY does the arithmetic
-- on signed 64-bit integers and refuses what the contract refuses: a value
-- that is not an integer, a sum that overflows. (Lua's numbers are doubles:
-- the new value is read back as text, exact.)
-- KEYS[1]: the session's hash. ARGV: now (ms), the field (its name as a
-- JSON string), the delta, the size limit.
-- Returns the new value as text; -1 when there is no live session; -3 when
-- the session would exceed the limit; -4 when the field holds no integer;
-- -5 when the sum overflows.
local key, field = KEYS[1], ARGV[2]
local meta = redis.call('HMGET', key, 'expires', 'bytes')
if not meta[1] or tonumber(meta[1]) <= tonumber(ARGV[1]) then
    return -1
end
local old = redis.call('HGET', key, field)
if old == '-0' then
    -- JSON's -0 is an integer zero; HINCRBY reads no sign on zero.
    redis.call('HSET', key, field, '0')
end
local sum = redis.pcall('HINCRBY', key, field, ARGV[3])
if type(sum) == 'table' and sum.err then
    if string.find(sum.err, 'overflow', 1, true) then
        return -5
    end
    return -4
end
local new = redis.call('HGET', key, field)
local fields = redis.call('HLEN', key) - 4
local bytes = tonumber(meta[2])
if old then
    bytes = bytes - #old + #new
else
    bytes = bytes + #field + 1 + #new
end
if 2 + bytes + math.max(fields - 1, 0) > tonumber(ARGV[4]) then
    if old then
        redis.call('HSET', key, field, old)
    else
        redis.call('HDEL', key, field)
    end
    return -3
end
redis.call('HSET', key, 'bytes', bytes)
redis.call('HINCRBY', key, 'gen', 1)
return new
