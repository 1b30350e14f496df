-- Argo CD health check for the gamecell.dev kinds: GameCell, PlayerService, MatchmakingPool.
--
-- The operator reports kstatus conditions on all three (Ready, Reconciling, Stalled) and
-- status.observedGeneration, so one script serves every kind:
--   Progressing  no status yet, the latest generation not yet observed, being deleted, or
--                reconciling (provisioning data stores, rolling out, retrying a transient error)
--   Degraded     Stalled=True: the operator cannot make progress without a change (a policy
--                violation, access denied, a refused workload, a stuck rollout)
--   Healthy      Ready=True for the latest generation
-- The message is the deciding condition's "Reason: message", as `kubectl describe` shows it.
-- Argo CD runs configured scripts with only the base, table, package and a safe os library (no
-- string or math library): this uses the base library alone. Numbers go through tonumber, since
-- Argo CD hands some numbers to Lua as strings.
local hs = {}

local function find(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.reason or c.type
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted: the operator releases it once its resources are dealt with"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = tonumber(obj.metadata.generation)
end
local observed = tonumber(obj.status.observedGeneration)
if observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local stalled = find(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

local reconciling = find(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the Ready condition"
end
return hs
