{{/*
Shared helpers of the chassis chart. Every per-service template ranges over
"chassis.services" and reads the service's section with (index .Values $name).
*/}}

{{/* The four workloads, in start order. */}}
{{- define "chassis.services" -}}
users orders gateway worker
{{- end -}}

{{/* Settings prefix of a service (USERS_, ORDERS_, ...). */}}
{{- define "chassis.prefix" -}}
{{- printf "%s_" (upper .) -}}
{{- end -}}

{{- define "chassis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-wide prefix of every object name: "<release>" when it already names the chart. */}}
{{- define "chassis.fullname" -}}
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

{{/* Name of one component's objects: (dict "root" $ "name" "users") -> <fullname>-users. */}}
{{- define "chassis.componentName" -}}
{{- printf "%s-%s" (include "chassis.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chassis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "chassis.labels" -}}
helm.sh/chart: {{ include "chassis.chart" . }}
app.kubernetes.io/name: {{ include "chassis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chassis
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "name" "users"). */}}
{{- define "chassis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chassis.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "chassis.componentLabels" -}}
{{ include "chassis.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "chassis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chassis.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Image reference: (dict "root" $ "image" <section.image>) ->
[registry/]repository:tag[@digest]. The tag defaults to the global tag, then appVersion.
*/}}
{{- define "chassis.image" -}}
{{- $root := .root -}}
{{- $tag := .image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion | toString -}}
{{- if eq $tag "latest" -}}
{{- fail "image tag 'latest' is refused: pin a version (image.tag or <service>.image.tag)" -}}
{{- end -}}
{{- $ref := printf "%s:%s" .image.repository $tag -}}
{{- with $root.Values.image.registry -}}
{{- $ref = printf "%s/%s" (trimSuffix "/" .) $ref -}}
{{- end -}}
{{- with .image.digest -}}
{{- $ref = printf "%s@%s" $ref . -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{- define "chassis.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* URL of one service inside the cluster: (dict "root" $ "name" "users"). */}}
{{- define "chassis.serviceUrl" -}}
{{- $svc := index .root.Values .name -}}
{{- printf "http://%s:%v" (include "chassis.componentName" .) $svc.port -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds of a service: the preStop pause, then the server's graceful
timeout, then 10 s for the rest of shutdown (span flush, pools) before the SIGKILL.
*/}}
{{- define "chassis.terminationGrace" -}}
{{- if kindIs "invalid" .terminationGracePeriodSeconds -}}
{{- add .preStopSleepSeconds .server.gracefulTimeoutSeconds 10 -}}
{{- else -}}
{{- .terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* Redis URL with the password as a $(REDIS_PASSWORD) reference when a Secret holds one. */}}
{{- define "chassis.redisUrl" -}}
{{- $r := .Values.externalRedis -}}
{{- if $r.existingSecret -}}
{{- printf "redis://:$(REDIS_PASSWORD)@%s:%v/%v" $r.host $r.port $r.database -}}
{{- else -}}
{{- printf "redis://%s:%v/%v" $r.host $r.port $r.database -}}
{{- end -}}
{{- end -}}

{{/* env entry for the Redis password (when externalRedis.existingSecret names a Secret). */}}
{{- define "chassis.redisPasswordEnv" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalRedis.existingSecret }}
      key: {{ .Values.externalRedis.passwordKey }}
{{- end -}}

{{/*
env entries giving a service with a database its URL: the password from its Secret, then
the URL that references it ($(VAR) expansion, so the password never sits in a ConfigMap).
*/}}
{{- define "chassis.databaseEnv" -}}
{{- $db := index .root.Values.externalDatabase .name -}}
{{- $prefix := include "chassis.prefix" .name -}}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "externalDatabase.%s.existingSecret is required" .name) $db.existingSecret }}
      key: {{ $db.passwordKey }}
- name: {{ $prefix }}DATABASE__URL
  value: {{ printf "postgresql+asyncpg://%s:$(DATABASE_PASSWORD)@%s:%v/%s" $db.username .root.Values.externalDatabase.host .root.Values.externalDatabase.port $db.database | quote }}
{{- end -}}

{{/* Pod-level fields every workload shares. */}}
{{- define "chassis.podSecurity" -}}
serviceAccountName: {{ include "chassis.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- include "chassis.imagePullSecrets" . }}
{{- end -}}

{{- define "chassis.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{/* Refuse a Helm older than Chart.yaml's minimum: it cannot check values.schema.json (draft 2020-12). */}}
{{- define "chassis.requireHelm" -}}
{{- $minimum := index .Chart.Annotations "chassis.platform/minimum-helm-version" -}}
{{- if semverCompare (printf "<%s-0" $minimum) .Capabilities.HelmVersion.Version -}}
{{- fail (printf "this chart needs Helm %s or newer (values.schema.json is JSON Schema draft 2020-12); this is Helm %s" $minimum .Capabilities.HelmVersion.Version) -}}
{{- end -}}
{{- end -}}
