-- Actions Argo CD offers on a ModelDeployment. promote, abort and retry write the
-- operator's one-shot annotations (a fresh timestamp each time; the operator acts once per
-- value); pause and resume set spec.rollout.paused, as `kubectl modeldeploy pause` does.
local actions = {}
local status = obj.status or {}
local canary = status.canary
local rollout = (obj.spec or {}).rollout or {}
local version = ((obj.spec or {}).model or {}).version

local held_back = false
if status.failedVersions ~= nil then
  for _, failed in ipairs(status.failedVersions) do
    if failed == version then
      held_back = true
    end
  end
end

actions["promote"] = { ["disabled"] = canary == nil }
actions["abort"] = { ["disabled"] = canary == nil }
actions["retry"] = { ["disabled"] = not held_back }
actions["pause"] = { ["disabled"] = rollout.paused == true }
actions["resume"] = { ["disabled"] = rollout.paused ~= true }
return actions
