-- Ask the operator to promote: a fresh value of its one-shot annotation (see discovery.lua).
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["serving.modeldeploy.dev/promote"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
