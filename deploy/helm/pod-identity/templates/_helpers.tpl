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


{{/* PostgreSQL holds the associations: a URL in the values or in the operator's Secret. */}}
{{- define "pod-identity.postgres" -}}
{{- if or .Values.server.databaseUrl (and .Values.server.existingSecret.name .Values.server.existingSecret.databaseUrlKey) }}true{{ end -}}
{{- end -}}

{{/* The Secret the agents sign EKS Auth requests with (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). */}}
{{- define "pod-identity.nodeSecret" -}}
{{ .Values.server.nodeKey.existingSecret | default (printf "%s-node-credentials" (include "pod-identity.fullname" .)) }}
{{- end -}}

{{/* The values that name an existing Secret's keys must name the Secret too, and not be given twice. */}}
{{- define "pod-identity.checkSecrets" -}}
{{- $s := .Values.server.existingSecret -}}
{{- if and (or $s.adminsKey $s.databaseUrlKey) (not $s.name) }}
{{- fail "server.existingSecret.name is required with server.existingSecret.adminsKey or databaseUrlKey" }}
{{- end }}
{{- if and $s.name $s.adminsKey .Values.server.admins }}
{{- fail "server.admins and server.existingSecret.adminsKey: give the admin keys one way" }}
{{- end }}
{{- if and $s.name $s.databaseUrlKey .Values.server.databaseUrl }}
{{- fail "server.databaseUrl and server.existingSecret.databaseUrlKey: give the database URL one way" }}
{{- end }}
{{- if and .Values.server.nodeKey.existingSecret (or .Values.server.nodeKey.accessKeyId .Values.server.nodeKey.secretAccessKey) }}
{{- fail "server.nodeKey.existingSecret and server.nodeKey.accessKeyId/secretAccessKey: give the node key one way" }}
{{- end }}
{{- end -}}

{{/* Who makes the webhook's (and API's) certificate: server (the server keeps it in a Secret), secret (the operator's), cert-manager. */}}
{{- define "pod-identity.certificateMode" -}}
{{- if .Values.certManager.enabled -}}
{{- if eq .Values.webhook.certificate.mode "secret" }}{{ fail "certManager.enabled and webhook.certificate.mode=secret: choose one way to get the certificate" }}{{ end -}}
cert-manager
{{- else -}}
{{ .Values.webhook.certificate.mode }}
{{- end -}}
{{- end -}}

{{- define "pod-identity.webhookSecret" -}}
{{ .Values.webhook.certificate.secretName | default (printf "%s-webhook-tls" (include "pod-identity.fullname" .)) }}
{{- end -}}

{{/* The names the serving certificate covers: the server's Service, as the API server and the agents call it. */}}
{{- define "pod-identity.serverNames" -}}
{{- $fullname := include "pod-identity.fullname" . -}}
{{- list (include "pod-identity.serverHost" .) (printf "%s-server" $fullname) (printf "%s-server.%s" $fullname .Release.Namespace) | toYaml -}}
{{- end -}}
