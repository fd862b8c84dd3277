-- spec.rollout.paused = true, as `kubectl modeldeploy pause` does. With auto-sync, Argo CD
-- sets it back to what Git says: change it in Git to keep it.
if obj.spec.rollout == nil then
  obj.spec.rollout = {}
end
obj.spec.rollout.paused = true
return obj
