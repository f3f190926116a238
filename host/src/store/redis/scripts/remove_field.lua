-- remove_field: removes one field of a live session, keeping the expiry.
-- KEYS[1]: the session's hash. ARGV: now (ms), the field (its name as a
-- JSON string).
-- Returns 1 when removed, 0 when absent (nothing written), -1 when there is
-- no live session.
local key, field = KEYS[1], ARGV[2]
local meta = redis.call('HMGET', key, 'expires', 'bytes')
if not meta[1] or tonumber(meta[1]) <= tonumber(ARGV[1]) then
    return -1
end
local old = redis.call('HSTRLEN', key, field)
if old == 0 then
    return 0
end
redis.call('HDEL', key, field)
redis.call('HSET', key, 'bytes', tonumber(meta[2]) - (#field + 1 + old))
redis.call('HINCRBY', key, 'gen', 1)
return 1
