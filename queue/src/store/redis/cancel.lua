-- ARGV: P, id, now
local id, now = ARGV[2], tonumber(ARGV[3])
local k = jkey(id)
local st = redis.call('HGET', k, 'status')
if not st then return fail_reply('NOT_FOUND', 'job not found') end
if st == 'pending' then
  local user = redis.call('HGET', k, 'user_id')
  local seq = tonumber(redis.call('HGET', k, 'seq'))
  local prio = tonumber(redis.call('HGET', k, 'priority'))
  leave_ready(id, user, prio)
  move_status(id, user, seq, 'pending', 'cancelled')
  redis.call('HSET', k, 'completed_at', now)
elseif st == 'running' then
  redis.call('HSET', k, 'cancel_requested', 1)
else
  return fail_reply('INVALID_STATE', 'job is already ' .. st)
end
return reply('OK', id)
