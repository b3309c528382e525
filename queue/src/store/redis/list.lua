-- ARGV: P, status ('' = any), user ('' = any), limit, offset. Newest first; each element
-- is a job's fields.
local status, user = ARGV[2], ARGV[3]
local limit, offset = tonumber(ARGV[4]), tonumber(ARGV[5])
local function fields(id) return redis.call('HMGET', jkey(id), unpack(FIELDS)) end
local out = {}
if status ~= '' and user ~= '' then
  -- Walk the user's jobs, newest first, keeping those in the status.
  local src = P .. ':user:' .. user
  local skipped, start, batch = 0, 0, 200
  while #out < limit do
    local ids = redis.call('ZREVRANGE', src, start, start + batch - 1)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      if redis.call('HGET', jkey(id), 'status') == status then
        if skipped < offset then
          skipped = skipped + 1
        elseif #out < limit then
          out[#out + 1] = fields(id)
        end
      end
    end
    start = start + batch
  end
  return out
end
local src = P .. ':all'
if user ~= '' then src = P .. ':user:' .. user end
if status ~= '' then src = P .. ':status:' .. status end
if limit == 0 then return out end
for _, id in ipairs(redis.call('ZREVRANGE', src, offset, offset + limit - 1)) do
  out[#out + 1] = fields(id)
end
return out
