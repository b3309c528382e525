-- ARGV: P, id, token ('' = none), now, result JSON
local id, token, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
if is_replay(id, token, {'completed'}) then return reply('OK', id) end
local err = fence(id, token, now)
if err then return err end
local k = jkey(id)
local user = redis.call('HGET', k, 'user_id')
local seq = tonumber(redis.call('HGET', k, 'seq'))
move_status(id, user, seq, 'running', 'completed')
redis.call('HSET', k, 'completed_at', now, 'result', ARGV[5])
stop_lease(id)
end_attempt(id, now, 'completed', nil)
return reply('OK', id)
