-- ARGV: P, id, priority
local id, prio = ARGV[2], tonumber(ARGV[3])
local j = load(id)
if not j then return fail_reply('NOT_FOUND', 'job not found') end
if j.status ~= 'pending' then
  return fail_reply('INVALID_STATE', 'only pending jobs can be reprioritised; job is ' .. j.status)
end
leave_ready(id, j.user_id, tonumber(j.priority))
redis.call('HSET', jkey(id), 'priority', prio)
enter_ready(id, j.user_id, prio, tonumber(j.seq))
j.priority = tostring(prio)
return reply('OK', j)
