{{/* _common.tpl -- names, labels, and the pieces the consumer and ingest pods share. */}}

{{- define "pixflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pixflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Object names derived from the full name; kept short enough for the 63-character limit. */}}
{{- define "pixflow.consumerName" -}}
{{- printf "%s-consumer" (include "pixflow.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}
{{- define "pixflow.ingestName" -}}
{{- printf "%s-ingest" (include "pixflow.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{- define "pixflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pixflow.labels" -}}
helm.sh/chart: {{ include "pixflow.chart" . }}
{{ include "pixflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "pixflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pixflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector of the consumer pods (Deployment, PDB, Service, spread constraints). */}}
{{- define "pixflow.consumerSelectorLabels" -}}
{{ include "pixflow.selectorLabels" . }}
app.kubernetes.io/component: consumer
{{- end -}}

{{- define "pixflow.ingestSelectorLabels" -}}
{{ include "pixflow.selectorLabels" . }}
app.kubernetes.io/component: ingest
{{- end -}}

{{- define "pixflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pixflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pixflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The stream KEDA watches: the same name the programs build from PIXFLOW_PREFIX. */}}
{{- define "pixflow.stream" -}}
{{- printf "%surls" .Values.config.prefix -}}
{{- end -}}

{{/* keda, hpa or none: what scales the consumers (auto picks KEDA when its API is served). */}}
{{- define "pixflow.autoscaler" -}}
{{- $mode := .Values.autoscaling.mode -}}
{{- if eq $mode "auto" -}}
{{- if .Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject" -}}keda{{- else -}}hpa{{- end -}}
{{- else if has $mode (list "keda" "hpa" "none") -}}
{{- $mode -}}
{{- else -}}
{{- fail (printf "autoscaling.mode must be auto, keda, hpa or none, not %q" $mode) -}}
{{- end -}}
{{- end -}}

{{/* Does the chart own a Secret, and with which keys? */}}
{{- define "pixflow.secretName" -}}
{{- include "pixflow.fullname" . -}}
{{- end -}}
{{- define "pixflow.redisSecretName" -}}
{{- default (include "pixflow.secretName" .) .Values.redis.existingSecret -}}
{{- end -}}
{{- define "pixflow.redisSecretKey" -}}
{{- if .Values.redis.existingSecret -}}{{ .Values.redis.existingSecretPasswordKey }}{{- else -}}redis-password{{- end -}}
{{- end -}}
{{- define "pixflow.redisHasPassword" -}}
{{- if or .Values.redis.existingSecret .Values.redis.password -}}true{{- end -}}
{{- end -}}
{{- define "pixflow.httpSecretName" -}}
{{- default (include "pixflow.secretName" .) .Values.consumer.http.existingSecret -}}
{{- end -}}
{{- define "pixflow.httpSecretKey" -}}
{{- if .Values.consumer.http.existingSecret -}}{{ .Values.consumer.http.existingSecretTokenKey }}{{- else -}}http-token{{- end -}}
{{- end -}}
{{- define "pixflow.httpTokenCheck" -}}
{{- if not (or .Values.consumer.http.existingSecret .Values.consumer.http.token) -}}
{{- fail "consumer.http.token or consumer.http.existingSecret is required: the bearer token /metrics and /images need" -}}
{{- end -}}
{{- end -}}
{{- define "pixflow.mongoSecretName" -}}
{{- default (include "pixflow.secretName" .) .Values.mongodb.existingSecret -}}
{{- end -}}
{{- define "pixflow.mongoSecretKey" -}}
{{- if .Values.mongodb.existingSecret -}}{{ .Values.mongodb.existingSecretUriKey }}{{- else -}}mongodb-uri{{- end -}}
{{- end -}}

{{/* Redis settings as environment entries. The password comes from a Secret and is expanded
     into PIXFLOW_REDIS_URL by Kubernetes ($(VAR) refers to an entry defined before it). */}}
{{- define "pixflow.redisEnv" -}}
{{- $host := required "redis.host is required: the address of your Redis (>= 7)" .Values.redis.host -}}
{{- $auth := "" -}}
{{- if include "pixflow.redisHasPassword" . -}}
{{- $auth = printf "%s:$(REDIS_PASSWORD)@" .Values.redis.username -}}
{{- end }}
{{- if .Values.redis.username }}
- name: REDIS_USERNAME
  value: {{ .Values.redis.username | quote }}
{{- end }}
{{- if include "pixflow.redisHasPassword" . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "pixflow.redisSecretName" . }}
      key: {{ include "pixflow.redisSecretKey" . }}
{{- end }}
- name: PIXFLOW_REDIS_URL
  value: {{ printf "redis://%s%s:%d/%d" $auth $host (int .Values.redis.port) (int .Values.redis.db) | quote }}
{{- end -}}

{{- define "pixflow.mongoEnv" -}}
{{- if not (or .Values.mongodb.existingSecret .Values.mongodb.uri) -}}
{{- fail "mongodb.uri or mongodb.existingSecret is required: the MongoDB the consumers store into" -}}
{{- end }}
- name: PIXFLOW_MONGO_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "pixflow.mongoSecretName" . }}
      key: {{ include "pixflow.mongoSecretKey" . }}
{{- end -}}

{{/* The raw store (values raw.*): where originals are kept, and the S3 keys from a Secret. */}}
{{- define "pixflow.rawSecretName" -}}
{{- default (include "pixflow.secretName" .) .Values.raw.existingSecret -}}
{{- end -}}
{{- define "pixflow.rawSecretKeys" -}}
{{- if .Values.raw.existingSecret -}}
{{ .Values.raw.existingSecretAccessKeyIdKey }} {{ .Values.raw.existingSecretSecretAccessKeyKey }}
{{- else -}}
aws-access-key-id aws-secret-access-key
{{- end -}}
{{- end -}}

{{/* PIXFLOW_RAW_URL, PIXFLOW_S3_* and AWS_* for the pods that read or write originals; nothing
     with raw.enabled=false. The same checks as the programs' own, so a bad value fails here
     rather than in a crash-looping pod. */}}
{{- define "pixflow.rawEnv" -}}
{{- $r := .Values.raw -}}
{{- if $r.enabled -}}
{{- $url := required "raw.url is required: the bucket originals are kept in, s3://BUCKET[/PREFIX] (or raw.enabled=false to keep none)" $r.url -}}
{{- if not (regexMatch "^s3://[a-z0-9.-]{3,63}(/[a-z0-9._-]+)*$" $url) -}}
{{- fail (printf "raw.url must be s3://BUCKET[/PREFIX] (bucket: 3 to 63 of a-z 0-9 . -; prefix: a-z 0-9 . _ - between single slashes), not %q" $url) -}}
{{- end -}}
{{- if and $r.endpoint (not (regexMatch "^https?://[^/?#@]+/?$" $r.endpoint)) -}}
{{- fail (printf "raw.endpoint must be http(s)://HOST[:PORT], not %q" $r.endpoint) -}}
{{- end -}}
{{- if not (or $r.existingSecret (and $r.accessKeyId $r.secretAccessKey)) -}}
{{- fail "raw.existingSecret, or raw.accessKeyId and raw.secretAccessKey, is required: the S3 keys pixflow signs with" -}}
{{- end -}}
{{- $keys := splitList " " (include "pixflow.rawSecretKeys" .) }}
- name: PIXFLOW_RAW_URL
  value: {{ $url | quote }}
{{- with $r.endpoint }}
- name: PIXFLOW_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: PIXFLOW_S3_REGION
  value: {{ required "raw.region is required: the region requests are signed for" $r.region | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "pixflow.rawSecretName" . }}
      key: {{ index $keys 0 }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "pixflow.rawSecretName" . }}
      key: {{ index $keys 1 }}
{{- end -}}
{{- end -}}

{{/* Are extra plugins listed? Then the plugin folder is an emptyDir at /plugins. */}}
{{- define "pixflow.pluginDir" -}}/plugins{{- end -}}
