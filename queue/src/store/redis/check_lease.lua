-- ARGV: P, id, 't:' .. token, now. Reply: {'OK'} when the token holds the live lease, else
-- the fence's error reply.
local j = load(ARGV[2], {'lease_fenced'})
local err = fence(j, parse_token(ARGV[3]), tonumber(ARGV[4]))
if err then return err end
return {'OK'}
