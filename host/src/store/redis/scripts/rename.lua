-- rename: moves a live session (data, generation, expiry and the key's
-- PEXPIREAT) to another key. Both keys are on one server: this script is
-- atomic only there (Redis Cluster will need a create-only copy and a
-- generation-checked delete, as the Aerospike backend does).
-- KEYS[1]: from, KEYS[2]: to. ARGV: now (ms).
-- Returns 1 when moved, 0 when there is no live session at from, -2 when a
-- live session holds to.
local now = tonumber(ARGV[1])
local function live(key)
    local expires = redis.call('HGET', key, 'expires')
    return expires and tonumber(expires) > now
end
if not live(KEYS[1]) then
    return 0
end
if live(KEYS[2]) then
    return -2
end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
