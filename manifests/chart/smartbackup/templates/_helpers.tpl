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

{{/* repository@digest when a digest pins the image, else repository:tag. */}}
{{- define "smartbackup.image" -}}{{ .repository }}{{ if .digest }}@{{ .digest }}{{ else }}:{{ .tag }}{{ end }}{{- end -}}

{{/* SMARTBACKUP_DBACCESS_LABEL: dbaccess.labels as a selector, keys sorted. */}}
{{- define "smartbackup.dbaccessLabel" -}}
{{- $pairs := list -}}
{{- range $k, $v := .Values.dbaccess.labels -}}{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* "true" when a product's storage is a file:// volume: the per-namespace volumes. */}}
{{- define "smartbackup.fileStorage" -}}
{{- if or (hasPrefix "file://" .Values.storage.smarterp) (hasPrefix "file://" .Values.storage.sistemico) -}}
{{- if not .Values.storage.volumeSource -}}
{{- fail "storage.volumeSource is required with a file:// storage URL (nfs://SERVER/PATH or hostpath:///PATH?read_only_root=/PATH-RO)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}
