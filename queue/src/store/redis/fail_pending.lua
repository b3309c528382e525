-- ARGV: P, id, now, error
-- Fails a pending job no worker can run; {'SKIP'} when it is not pending (or gone).
local id, now, msg = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local j = load(id)
if not j or j.status ~= 'pending' then return {'SKIP'} end
local k = jkey(id)
leave_ready(id, j.user_id, tonumber(j.priority))
move_status(id, j.user_id, tonumber(j.seq), 'pending', 'failed')
redis.call('HSET', k, 'status', 'failed', 'completed_at', now, 'error', msg)
redis.call('HDEL', k, 'not_before')
j.status, j.completed_at, j.error, j.not_before = 'failed', tostring(now), msg, false
return reply('OK', j)
