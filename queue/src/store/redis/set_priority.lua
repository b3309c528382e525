-- ARGV: P, id, priority
local id, prio = ARGV[2], tonumber(ARGV[3])
local k = jkey(id)
local st = redis.call('HGET', k, 'status')
if not st then return fail_reply('NOT_FOUND', 'job not found') end
if st ~= 'pending' then
  return fail_reply('INVALID_STATE', 'only pending jobs can be reprioritised; job is ' .. st)
end
local user = redis.call('HGET', k, 'user_id')
local seq = tonumber(redis.call('HGET', k, 'seq'))
local old = tonumber(redis.call('HGET', k, 'priority'))
leave_ready(id, user, old)
redis.call('HSET', k, 'priority', prio)
enter_ready(id, user, prio, seq)
return reply('OK', id)
