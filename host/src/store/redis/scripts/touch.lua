-- touch: resets the expiry of a live session; data and generation stay.
-- KEYS[1]: the session's hash. ARGV: now (ms), expires (ms), evict_at (ms).
-- Returns 1 when touched, 0 when there is no live session.
local key = KEYS[1]
local expires = redis.call('HGET', key, 'expires')
if not expires or tonumber(expires) <= tonumber(ARGV[1]) then
    return 0
end
redis.call('HSET', key, 'expires', ARGV[2])
redis.call('PEXPIREAT', key, ARGV[3])
return 1
