-- ARGV: P, limit
-- The first `limit` pending jobs in queue order: each a job's fields, then its req_class.
local out = {}
for _, id in ipairs(redis.call('ZRANGE', P .. ':pending', 0, tonumber(ARGV[2]) - 1)) do
  local j = load(id, {'req_class'})
  if j then
    local row = fields_into({}, j)
    row[#row + 1] = j.req_class or ''
    out[#out + 1] = row
  end
end
return out
