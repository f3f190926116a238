-- set_field: sets one field of a live session within the size limit,
-- keeping the expiry.
-- KEYS[1]: the session's hash. ARGV: now (ms), the field (its name as a JSON
-- string), the value (JSON text), the size limit (bytes of JSON text).
-- Returns the new generation; -1 when there is no live session; -3 when the
-- session would exceed the limit.
local key, field, value = KEYS[1], ARGV[2], ARGV[3]
local meta = redis.call('HMGET', key, 'expires', 'bytes')
if not meta[1] or tonumber(meta[1]) <= tonumber(ARGV[1]) then
    return -1
end
-- The session's size as JSON text: braces, the fields' bytes, commas.
local fields = redis.call('HLEN', key) - 4
local bytes = tonumber(meta[2])
local old = redis.call('HSTRLEN', key, field)
if old > 0 then
    bytes = bytes - (#field + 1 + old)
else
    fields = fields + 1
end
bytes = bytes + #field + 1 + #value
if 2 + bytes + math.max(fields - 1, 0) > tonumber(ARGV[4]) then
    return -3
end
redis.call('HSET', key, field, value, 'bytes', bytes)
return redis.call('HINCRBY', key, 'gen', 1)
