-- ARGV: P, limit
-- The first `limit` pending jobs in queue order: id, req_class, id, req_class, ...
local out = {}
for _, id in ipairs(redis.call('ZRANGE', P .. ':pending', 0, tonumber(ARGV[2]) - 1)) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', jkey(id), 'req_class') or ''
end
return out
