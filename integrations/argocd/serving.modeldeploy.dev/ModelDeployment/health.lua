-- Argo CD health of a ModelDeployment (serving.modeldeploy.dev/v1alpha1), from the
-- operator's status. A status older than the spec (observedGeneration behind) is
-- Progressing whatever it says: it describes a spec that is no longer asked for.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil then
  return hs
end
local status = obj.status

local function condition(kind)
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end

local function message_of(kind, fallback)
  local c = condition(kind)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if status.observedGeneration == nil or status.observedGeneration ~= obj.metadata.generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end

local phase = status.phase
if phase == "Degraded" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message_of("Degraded", "the resource is " .. tostring(phase))
  return hs
end

local paused = obj.spec ~= nil and obj.spec.rollout ~= nil and obj.spec.rollout.paused == true
if status.canary ~= nil and (paused or status.canary.paused == true) then
  hs.status = "Suspended"
  hs.message = "Canary of version " .. tostring(status.canary.version) .. " paused at weight "
    .. tostring(status.canary.weight or 0) .. "%"
  return hs
end

if phase == "Ready" then
  hs.status = "Healthy"
  hs.message = message_of("Ready", "ready")
  return hs
end

hs.message = message_of("Progressing", "rolling out")
return hs
