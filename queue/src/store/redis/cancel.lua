-- ARGV: P, id, now
local id, now = ARGV[2], tonumber(ARGV[3])
local j = load(id)
if not j then return fail_reply('NOT_FOUND', 'job not found') end
local k = jkey(id)
if j.status == 'pending' then
  local seq = tonumber(j.seq)
  leave_ready(id, j.user_id, tonumber(j.priority))
  move_status(id, j.user_id, seq, 'pending', 'cancelled')
  redis.call('HSET', k, 'status', 'cancelled', 'completed_at', now)
  redis.call('HDEL', k, 'not_before')
  j.status, j.completed_at, j.not_before = 'cancelled', tostring(now), false
elseif j.status == 'running' then
  redis.call('HSET', k, 'cancel_requested', 1)
  j.cancel_requested = '1'
else
  return fail_reply('INVALID_STATE', 'job is already ' .. j.status)
end
return reply('OK', j)
