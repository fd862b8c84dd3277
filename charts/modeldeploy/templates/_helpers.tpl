{{- /* The objects' name: one operator per cluster, so the release's name is not part of it. */ -}}
{{- define "modeldeploy.name" -}}
{{- .Values.fullnameOverride | default .Values.nameOverride | default "modeldeploy" | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "modeldeploy.labels" -}}
app.kubernetes.io/name: modeldeploy-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modeldeploy.selector" -}}
app.kubernetes.io/name: modeldeploy-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modeldeploy.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "modeldeploy.name" .) -}}
{{- end -}}

{{- /* Replicas that cannot contradict the election: without it, two replicas would both act
on every resource, so more than one is refused rather than silently dropped. */ -}}
{{- define "modeldeploy.replicas" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicas) 1) -}}
{{- fail (printf "replicas: %v needs leaderElection.enabled=true (without it every replica acts on every resource); set replicas=1" .Values.replicas) -}}
{{- end -}}
{{- .Values.replicas -}}
{{- end -}}

{{- /* The Secret holding notifications.yaml: the admin's own, or the chart's; empty: none. */ -}}
{{- define "modeldeploy.notificationsSecret" -}}
{{- if .Values.notifications.existingSecret -}}
{{ .Values.notifications.existingSecret }}
{{- else if .Values.notifications.webhooks -}}
{{ include "modeldeploy.name" . }}-notifications
{{- end -}}
{{- end -}}
