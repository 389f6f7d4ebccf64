{{- define "chatgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chatgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "chatgate.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "chatgate.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chatgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "chatgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: api, worker or migrate. */}}
{{- define "chatgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chatgate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "chatgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "chatgate.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "chatgate.fullname" .) -}}
{{- end -}}

{{/* The environment every chatgate container shares; secrets come from envFrom. */}}
{{- define "chatgate.env" -}}
- name: CHATGATE_AUTH_MODE
  value: jwt
{{- if .Values.auth.jwtAudience }}
- name: CHATGATE_JWT_AUDIENCE
  value: {{ .Values.auth.jwtAudience | quote }}
{{- end }}
{{- if .Values.auth.jwksUrl }}
- name: CHATGATE_JWT_JWKS_URL
  value: {{ .Values.auth.jwksUrl | quote }}
{{- end }}
{{- if .Values.auth.jwtIssuer }}
- name: CHATGATE_JWT_ISSUER
  value: {{ .Values.auth.jwtIssuer | quote }}
{{- end }}
- name: CHATGATE_DRAIN_GRACE_SECONDS
  value: {{ .Values.drainGraceSeconds | quote }}
- name: CHATGATE_KEEP_ALIVE_SECONDS
  value: {{ .Values.keepAliveSeconds | quote }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "chatgate.envFrom" -}}
- secretRef:
    name: {{ include "chatgate.secretName" . }}
{{- end -}}

{{- define "chatgate.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "chatgate.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end -}}

{{/* /tmp: prometheus multiprocess files of several workers, uploads being read, jieba's cache. */}}
{{- define "chatgate.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "chatgate.checks" -}}
{{- if le (int .Values.api.terminationGracePeriodSeconds) (add .Values.drainGraceSeconds .Values.api.preStopSleepSeconds | int) -}}
{{- fail (printf "api.terminationGracePeriodSeconds (%v) must exceed drainGraceSeconds + api.preStopSleepSeconds (%v)" .Values.api.terminationGracePeriodSeconds (add .Values.drainGraceSeconds .Values.api.preStopSleepSeconds)) -}}
{{- end -}}
{{- if le (int .Values.worker.terminationGracePeriodSeconds) (int .Values.drainGraceSeconds) -}}
{{- fail (printf "worker.terminationGracePeriodSeconds (%v) must exceed drainGraceSeconds (%v)" .Values.worker.terminationGracePeriodSeconds .Values.drainGraceSeconds) -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- $_ := required "secrets.databaseUrl is required (or secrets.existingSecret): postgresql+asyncpg://..." .Values.secrets.databaseUrl -}}
{{- $_ := required "secrets.redisUrl is required (or secrets.existingSecret): several replicas share limits, cache and tasks through Redis" .Values.secrets.redisUrl -}}
{{- $_ := required "secrets.encryptionKeys is required (or secrets.existingSecret): chatgate new-key --key-id k1" .Values.secrets.encryptionKeys -}}
{{- if not .Values.auth.jwksUrl -}}
{{- $_ := required "secrets.jwtSecret (32+ characters) or auth.jwksUrl is required (or secrets.existingSecret)" .Values.secrets.jwtSecret -}}
{{- end -}}
{{- end -}}
{{- end -}}
