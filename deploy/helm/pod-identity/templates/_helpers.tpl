{{- define "pod-identity.name" -}}pod-identity{{- end -}}

{{- define "pod-identity.fullname" -}}
{{- if contains "pod-identity" .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-pod-identity" .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "pod-identity.labels" -}}
app.kubernetes.io/name: pod-identity
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "pod-identity.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "pod-identity.serverHost" -}}
{{ include "pod-identity.fullname" . }}-server.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* Pods of the control plane and agent never get mutated themselves. */}}
{{- define "pod-identity.skipLabel" -}}
eks.amazonaws.com/skip-pod-identity-webhook: "true"
{{- end -}}
