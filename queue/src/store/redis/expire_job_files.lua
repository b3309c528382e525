-- ARGV: P, ended_before, job ids... Forgets the files of those jobs that ended (completed,
-- failed, cancelled) before ended_before, or that are not there. Reply: how many jobs.
local cutoff = tonumber(ARGV[2])
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local v = redis.call('HMGET', jkey(id), 'status', 'completed_at')
  local ended = (v[1] == 'completed' or v[1] == 'failed' or v[1] == 'cancelled')
    and tonumber(v[2] or '0') < cutoff
  if ended or not v[1] then
    local fk = P .. ':files:' .. id
    for _, rec in ipairs(redis.call('HVALS', fk)) do ref_blob(cjson.decode(rec).sha256, -1) end
    redis.call('DEL', fk)
    redis.call('SREM', P .. ':fjobs', id)
    n = n + 1
  end
end
return n
