-- ARGV: P, uploaded_before, batch. Forgets up to `batch` uploads last used before
-- uploaded_before. Reply: how many (the caller calls again while it is `batch`).
local members = redis.call('ZRANGEBYSCORE', P .. ':uploads', '-inf', '(' .. ARGV[2], 'LIMIT', 0,
  tonumber(ARGV[3]))
for _, m in ipairs(members) do
  local sep = string.find(m, '\0', 1, true)
  if sep then
    local user, sha = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
    if redis.call('HDEL', P .. ':upload:' .. user, sha) == 1 then ref_blob(sha, -1) end
  end
  redis.call('ZREM', P .. ':uploads', m)
end
return #members
