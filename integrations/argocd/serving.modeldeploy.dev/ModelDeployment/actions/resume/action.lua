-- spec.rollout.paused = false, as `kubectl modeldeploy resume` does. With auto-sync, Argo CD
-- sets it back to what Git says: change it in Git to keep it.
if obj.spec.rollout == nil then
  obj.spec.rollout = {}
end
obj.spec.rollout.paused = false
return obj
