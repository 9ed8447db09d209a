{{- define "smartbackup.name" -}}smartbackup-webhook{{- end -}}

{{- define "smartbackup.labels" -}}
app.kubernetes.io/name: smartbackup-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: smartbackup
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "smartbackup.selector" -}}
app.kubernetes.io/name: smartbackup-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "smartbackup.image" -}}{{ .repository }}:{{ .tag }}{{- end -}}
