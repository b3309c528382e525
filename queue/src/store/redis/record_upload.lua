-- ARGV: P, user, sha256, the upload's JSON, uploaded_at. Reply: 1 for a first upload of
-- these bytes by this user, 0 for a repeat (which refreshes name, type and time).
local user, sha, at = ARGV[2], ARGV[3], ARGV[5]
local hk = P .. ':upload:' .. user
local existed = redis.call('HEXISTS', hk, sha) == 1
redis.call('HSET', hk, sha, ARGV[4])
redis.call('ZADD', P .. ':uploads', 'GT', at, user .. '\0' .. sha)
if existed then return 0 end
ref_blob(sha, 1)
return 1
