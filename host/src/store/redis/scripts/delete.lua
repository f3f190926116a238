-- delete: deletes a session, live or expired.
-- KEYS[1]: the session's hash. ARGV: now (ms).
-- Returns 1 when a live session was deleted, else 0.
local expires = redis.call('HGET', KEYS[1], 'expires')
redis.call('DEL', KEYS[1])
if expires and tonumber(expires) > tonumber(ARGV[1]) then
    return 1
end
return 0
