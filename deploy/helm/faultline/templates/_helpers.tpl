{{/* The release's name, with the chart's appended unless it already holds it (faultline). */}}
{{- define "faultline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; call with (dict "root" $ "component" "agent"). */}}
{{- define "faultline.labels" -}}
{{ include "faultline.selectorLabels" . }}
app.kubernetes.io/part-of: faultline
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The labels a component's pods are selected by. */}}
{{- define "faultline.selectorLabels" -}}
app.kubernetes.io/name: faultline
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* An image: (dict "root" $ "repository" NAME). */}}
{{- define "faultline.image" -}}
{{- $v := .root.Values.image -}}
{{- $tag := $v.tag | default .root.Chart.AppVersion -}}
{{- if $v.registry -}}
{{- printf "%s/%s:%s" $v.registry .repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "faultline.brokers" -}}
{{- required "kafka.brokers: set your Kafka's bootstrap servers (HOST:PORT[,…])" .Values.kafka.brokers -}}
{{- end -}}

{{/* Prometheus scrape annotations of a Service: (dict "root" $ "port" PORT). */}}
{{- define "faultline.scrapeAnnotations" -}}
{{- if .root.Values.prometheus.annotations }}
annotations:
  prometheus.io/scrape: "true"
  prometheus.io/port: {{ .port | quote }}
  prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Probes on a process's HTTP port named http: startup and liveness on /healthz, readiness
     on /readyz. (dict "startupSeconds" N): how long the process may take to start. */}}
{{- define "faultline.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 5
  failureThreshold: {{ div .startupSeconds 5 }}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* The security context of the stream's and the diagnosis's containers. */}}
{{- define "faultline.restrictedContainer" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
{{- end -}}
