{{/* Chart name, and the fully qualified release name, both cut to 63 characters (DNS label). */}}
{{- define "trtops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trtops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one pool's objects: (list $ $poolName). */}}
{{- define "trtops.poolFullname" -}}
{{- $ := index . 0 }}
{{- printf "%s-%s" (include "trtops.fullname" $) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; selector labels come on top. */}}
{{- define "trtops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trt-ops
{{- end }}

{{- define "trtops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trtops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of one pool: (list $ $poolName). */}}
{{- define "trtops.poolSelectorLabels" -}}
{{- $ := index . 0 -}}
{{ include "trtops.selectorLabels" $ }}
app.kubernetes.io/component: worker
trt-ops/pool: {{ index . 1 }}
{{- end }}

{{- define "trtops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-worker" (include "trtops.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
One pool's settings, resolved once: (list $ $poolName $pool); returns YAML for fromYaml.
A pool is enabled unless it says enabled: false. A key the pool sets wins, even when empty or zero (tolerations: [], replicas: 0); a key it
leaves out takes the top-level value. image, env, keda and podDisruptionBudget merge key by key
(the pool wins). The GPU count becomes the container's nvidia.com/gpu limit.
*/}}
{{- define "trtops.pool" -}}
{{- $ := index . 0 }}
{{- $name := index . 1 }}
{{- $pool := index . 2 }}
{{- $out := dict "name" $name "fullname" (include "trtops.poolFullname" (list $ $name))
    "enabled" (hasKey $pool "enabled" | ternary $pool.enabled true)
    "queue" $pool.queue "gpus" (int $pool.gpus) "description" ($pool.description | default "") }}
{{- range $key := list "replicas" "concurrency" "resources" "nodeSelector" "tolerations" "terminationGracePeriodSeconds" }}
{{- $_ := set $out $key (hasKey $pool $key | ternary (index $pool $key) (index $.Values $key)) }}
{{- end }}
{{- range $key := list "image" "env" "keda" "podDisruptionBudget" }}
{{- $_ := set $out $key (mergeOverwrite (deepCopy (index $.Values $key)) (index $pool $key | default dict)) }}
{{- end }}
{{- $resources := deepCopy ($out.resources | default dict) }}
{{- if gt $out.gpus 0 }}
{{- $_ := set $resources "limits" (mergeOverwrite ($resources.limits | default dict) (dict "nvidia.com/gpu" $out.gpus)) }}
{{- end }}
{{- $_ := set $out "resources" $resources }}
{{- toYaml $out }}
{{- end }}

{{/* image reference: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "trtops.imageRef" -}}
{{- $ := index . 0 }}
{{- $image := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* A secretKeyRef env entry: (list $envName $ref) where $ref has name and key; none if no name. */}}
{{- define "trtops.secretEnv" -}}
{{- $ref := index . 1 -}}
{{- if $ref.name -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name | quote }}
      key: {{ $ref.key | quote }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the target catalog: the chart's own, an existing one, or "" (built-in). */}}
{{- define "trtops.catalogConfigMap" -}}
{{- if .Values.catalog.content }}
{{- printf "%s-catalog" (include "trtops.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- .Values.catalog.existingConfigMap }}
{{- end }}
{{- end }}
