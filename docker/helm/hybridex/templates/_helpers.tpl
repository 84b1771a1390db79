{{/* Object names: "<fullname>-engine" and so on; with the release named hybridex, the names
of the kustomize set (hybridex-engine, hybridex-config, ...). */}}
{{- define "hybridex.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The selector of one process's pods: name as in docker/k8s, and the release. */}}
{{- define "hybridex.selector" -}}
app.kubernetes.io/name: hybridex-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "hybridex.labels" -}}
{{ include "hybridex.selector" . }}
app.kubernetes.io/part-of: hybridex
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Labels of objects that belong to no one process (ConfigMap, NetworkPolicies). */}}
{{- define "hybridex.commonLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: hybridex
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The image, by version (never latest) and, when given, digest. */}}
{{- define "hybridex.image" -}}
{{- $tag := toString (required "image.tag is required: the project version, e.g. 0.1.0" .Values.image.tag) -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag: latest is refused; name the version (e.g. 0.1.0)" -}}
{{- end -}}
{{- .Values.image.repository }}:{{ $tag }}{{ if .Values.image.digest }}@{{ .Values.image.digest }}{{ end -}}
{{- end -}}

{{/* uid 10001 (the image's user), no service-account token, no Service variables: the
Services hybridex-api and hybridex-engine would inject HYBRIDEX_API_PORT=tcp://... and
HYBRIDEX_ENGINE_PORT=tcp://..., names that are (or look like) settings. */}}
{{- define "hybridex.podSecurity" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "hybridex.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
{{- if .fsGroup }}
fsGroup: 10001
{{- end }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Read-only root (the writable paths are volumes), no privilege escalation, no capability. */}}
{{- define "hybridex.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Ports the image's processes serve; the settings below point them there. */}}
{{- define "hybridex.ports" -}}
{{- dict "api" 8000 "engine" 7700 "engineMetrics" 9103 "settlementMetrics" 9101 "indexerMetrics" 9102 "relayMetrics" 9104 | toJson -}}
{{- end -}}

{{/* The ConfigMap's data: the operator's settings, then the wiring the chart owns (paths
the pods mount volumes on, the engine's Service, the ports). */}}
{{- define "hybridex.settings" -}}
{{- $ports := include "hybridex.ports" . | fromJson -}}
{{- $wiring := dict
  "HYBRIDEX_ENGINE_HOST" (printf "%s-engine" (include "hybridex.fullname" .))
  "HYBRIDEX_ENGINE_PORT" (toString $ports.engine)
  "HYBRIDEX_ENGINE_TRANSPORT" "tcp"
  "HYBRIDEX_ENGINE_JOURNAL_DIR" "/var/lib/hybridex/journal"
  "HYBRIDEX_BEAT_SCHEDULE" "/var/lib/hybridex/beat/celerybeat-schedule"
  "HYBRIDEX_ENGINE_METRICS_PORT" (toString $ports.engineMetrics)
  "HYBRIDEX_SETTLEMENT_METRICS_PORT" (toString $ports.settlementMetrics)
  "HYBRIDEX_INDEXER_METRICS_PORT" (toString $ports.indexerMetrics)
  "HYBRIDEX_RELAY_METRICS_PORT" (toString $ports.relayMetrics)
-}}
{{- $settings := .Values.settings -}}
{{- range $key, $_ := $wiring -}}
{{- if hasKey $settings $key -}}
{{- fail (printf "settings.%s is set by the chart (it must match the pods' mounts and ports); remove it" $key) -}}
{{- end -}}
{{- end -}}
{{- $_ := required "settings.HYBRIDEX_FEE_RECIPIENT is required: the operator's fee account, the Exchange's feeRecipient()" $settings.HYBRIDEX_FEE_RECIPIENT -}}
{{- $_ := required "settings.HYBRIDEX_INDEXER_START_BLOCK is required: the block of the Exchange's deployment transaction" $settings.HYBRIDEX_INDEXER_START_BLOCK -}}
{{- range $key, $value := $settings }}
{{- if not (hasPrefix "HYBRIDEX_" $key) }}
{{- fail (printf "settings.%s: settings are HYBRIDEX_* variables" $key) }}
{{- end }}
{{- if and (kindIs "float64" $value) (eq $value (floor $value)) }}
{{- /* YAML numbers reach templates as floats: 21000000 would print as 2.1e+07. */}}
{{- $value = int64 $value }}
{{- end }}
{{- if not (kindIs "invalid" $value) }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- range $key, $value := $wiring }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end -}}
