{{/* _ingest.tpl -- the ingest container, shared by the watching Deployment and the Job.
     Called with (dict "root" $ "args" (list ...) "mounts" (list ...)). */}}
{{- define "pixflow.ingestContainer" -}}
{{- $ := .root -}}
- name: ingest
  image: {{ include "pixflow.image" $ }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  command: ["pixflow-ingest"]
  args:
    {{- toYaml .args | nindent 4 }}
  envFrom:
    - configMapRef:
        name: {{ include "pixflow.fullname" $ }}
  env:
    {{- include "pixflow.redisEnv" $ | trim | nindent 4 }}
    - name: PIXFLOW_INGEST_BATCH
      value: {{ $.Values.ingest.batch | toString | quote }}
    - name: PIXFLOW_INGEST_MAX_BACKLOG
      value: {{ $.Values.ingest.maxBacklog | toString | quote }}
  resources:
    {{- toYaml $.Values.ingest.resources | nindent 4 }}
  securityContext:
    {{- toYaml $.Values.ingest.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    {{- with .mounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* The pod spec fields both ingest workloads share. */}}
{{- define "pixflow.ingestPodCommon" -}}
serviceAccountName: {{ include "pixflow.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.ingest.podSecurityContext | nindent 2 }}
{{- with .Values.ingest.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.ingest.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
