-- ARGV: P, id
-- A job's workflow text, false when the job is gone.
local id = ARGV[2]
return workflow({id = id, workflow = redis.call('HGET', jkey(id), 'workflow')})
