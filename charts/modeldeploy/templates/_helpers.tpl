{{- define "modeldeploy.name" -}}modeldeploy{{- end -}}

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

{{- /* The Secret holding notifications.yaml: the admin's own, or the chart's; empty: none. */ -}}
{{- define "modeldeploy.notificationsSecret" -}}
{{- if .Values.notifications.existingSecret -}}
{{ .Values.notifications.existingSecret }}
{{- else if .Values.notifications.webhooks -}}
{{ include "modeldeploy.name" . }}-notifications
{{- end -}}
{{- end -}}
