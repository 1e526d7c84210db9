{{/* Names, labels and the service configuration the pods read. */}}

{{- define "isthmus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: <release>-<chart>, or the release name when it contains the chart's. */}}
{{- define "isthmus.fullname" -}}
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

{{- define "isthmus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "isthmus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "isthmus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "isthmus.labels" -}}
helm.sh/chart: {{ include "isthmus.chart" . }}
{{ include "isthmus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: scheduler
app.kubernetes.io/part-of: isthmus
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "isthmus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "isthmus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "isthmus.leaseName" -}}
{{- printf "%s-leader" (include "isthmus.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "isthmus.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* A file value: a non-empty string as it is, a non-empty mapping as YAML, else the chart's default file. */}}
{{- define "isthmus.fileValue" -}}
{{- $value := index . 0 }}
{{- $files := index . 1 }}
{{- $default := index . 2 }}
{{- if and (kindIs "string" $value) $value }}
{{- $value }}
{{- else if and (kindIs "map" $value) $value }}
{{- toYaml $value }}
{{- else }}
{{- $files.Get $default }}
{{- end }}
{{- end }}

{{/* Checks that a schema cannot express clearly; each message says what to set. */}}
{{- define "isthmus.validate" -}}
{{- $replicas := int .Values.replicaCount }}
{{- if and (gt $replicas 1) (not .Values.database.existingSecret) }}
{{- fail (printf "replicaCount is %d but database.existingSecret is empty: several replicas share their state in PostgreSQL; set database.existingSecret to a Secret whose key %q holds the URL (SQLite is for single-replica trials only)" $replicas .Values.database.secretKey) }}
{{- end }}
{{- if and (gt $replicas 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: only one control loop may run; enable leader election or set replicaCount: 1" $replicas) }}
{{- end }}
{{- if and .Values.leaderElection.enabled (not .Values.rbac.create) (not .Values.serviceAccount.name) }}
{{- fail "rbac.create is false: name the service account that may use the Lease in serviceAccount.name" }}
{{- end }}
{{- if le (float64 .Values.leaderElection.leaseDurationSeconds) (mulf 2 .Values.leaderElection.renewEverySeconds) }}
{{- fail (printf "leaderElection.renewEverySeconds (%v) must be under half of leaderElection.leaseDurationSeconds (%v): a leader renews at least twice per lease" .Values.leaderElection.renewEverySeconds .Values.leaderElection.leaseDurationSeconds) }}
{{- end }}
{{- $seen := dict }}
{{- range .Values.sites }}
{{- if hasKey $seen .name }}
{{- fail (printf "sites: %q is listed twice" .name) }}
{{- end }}
{{- if hasKey $.Values.extraSites .name }}
{{- fail (printf "sites: %q is also in extraSites" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- end }}
{{- end }}

{{/* isthmus.yaml: the service configuration (scheduler/service/config.py). Paths are relative to it. */}}
{{- define "isthmus.config" -}}
{{- $doc := dict "topology" "topology.yaml" "policy" "policy.yaml" }}
{{- range $key, $value := .Values.config }}
{{- $_ := set $doc $key $value }}
{{- end }}
{{- if not .Values.database.existingSecret }}
{{- $_ := set $doc "database" "sqlite:////var/lib/isthmus/isthmus.db" }}
{{- end }}
{{- $sites := dict }}
{{- range $name, $site := .Values.extraSites }}
{{- $_ := set $sites $name $site }}
{{- end }}
{{- range .Values.sites }}
{{- $site := dict "adapter" "kubernetes" "kubeconfig" (printf "/etc/isthmus/sites/%s/kubeconfig" .name) }}
{{- $site = merge $site (default dict .settings) }}
{{- $_ := set $sites .name $site }}
{{- end }}
{{- if $sites }}
{{- $_ := set $doc "sites" $sites }}
{{- end }}
{{- if .Values.leaderElection.enabled }}
{{- $_ := set $doc "leader_election" (dict "lease" (include "isthmus.leaseName" .) "namespace" .Release.Namespace "lease_duration_s" .Values.leaderElection.leaseDurationSeconds "renew_every_s" .Values.leaderElection.renewEverySeconds) }}
{{- end }}
{{- toYaml $doc }}
{{- end }}
