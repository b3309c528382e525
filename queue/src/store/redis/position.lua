-- ARGV: P, id. 1-based place among pending jobs by (priority, seq), or false.
local score = redis.call('ZSCORE', P .. ':pending', ARGV[2])
if not score then return false end
return redis.call('ZCOUNT', P .. ':pending', '-inf', score)
