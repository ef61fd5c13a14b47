{{/* Names and labels shared by the templates. */}}
{{- define "laserd.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "laserd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "laserd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "laserd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "laserd.labels" -}}
{{ include "laserd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "laserd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding the bearer tokens. */}}
{{- define "laserd.tokensSecret" -}}
{{- default (printf "%s-tokens" (include "laserd.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* Prometheus scrape annotations (metrics.scrape) merged with `extra`, as YAML. */}}
{{- define "laserd.annotations" -}}
{{- $a := dict -}}
{{- if .root.Values.metrics.scrape -}}
{{- $_ := set $a "prometheus.io/scrape" "true" -}}
{{- $_ := set $a "prometheus.io/port" (printf "%v" .root.Values.ports.http) -}}
{{- $_ := set $a "prometheus.io/path" "/metrics" -}}
{{- end -}}
{{- with .extra }}{{ $a = merge $a . }}{{ end -}}
{{- if $a }}{{ toYaml $a }}{{ end -}}
{{- end -}}

{{/* A probe on grpc.health.v1: native gRPC (plaintext), or with TLS the image's
     laserd-healthcheck over TLS. */}}
{{- define "laserd.healthProbe" -}}
{{- if .Values.tls.enabled -}}
exec:
  command:
    - /opt/laserd/venv/bin/python3
    - /opt/laserd/bin/laserd-healthcheck
    - --target
    - {{ printf "127.0.0.1:%v" .Values.ports.grpc | quote }}
    - --tls-ca
    - /etc/laserd/tls/ca.crt
    - --tls-server-name
    - {{ required "tls.serverName: the name in the server certificate, for the probes" .Values.tls.serverName | quote }}
    {{- if .Values.tls.clientCA }}
    - --tls-cert
    - /etc/laserd/tls/tls.crt
    - --tls-key
    - /etc/laserd/tls/tls.key
    {{- end }}
{{- else -}}
grpc:
  port: {{ .Values.ports.grpc }}
  service: ""
{{- end }}
{{- end -}}
