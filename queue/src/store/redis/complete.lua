-- ARGV: P, id, token ('' = none, else 't:' .. token), now, result JSON. The reply leaves `result` out (the
-- caller has it) except for a replay, which answers the stored job as it is.
local id, token, now = ARGV[2], parse_token(ARGV[3]), tonumber(ARGV[4])
local j = load(id, {'lease_fenced'})
if is_replay(j, token, {'completed'}) then return reply('OK', j) end
local err = fence(j, token, now)
if err then return err end
local k = jkey(id)
move_status(id, j.user_id, tonumber(j.seq), 'running', 'completed')
redis.call('ZREM', P .. ':leases', id)
end_attempt(j, now, 'completed', nil)
j.status, j.completed_at, j.lease_until = 'completed', tostring(now), false
-- An earlier attempt's error stays in its history entry only.
j.error = false
redis.call('HDEL', k, 'lease_until', 'error')
redis.call('HSET', k, 'status', 'completed', 'completed_at', now, 'result', ARGV[5],
  'history', j.history)
return reply('OK', j)
