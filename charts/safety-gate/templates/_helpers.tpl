{{/* vim: set filetype=mustache: */}}

{{/* Chart name, overridable. */}}
{{- define "safety-gate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name used as the prefix of every object. Kept short enough for the
suffixes below ("-metrics", "-cleanup", "-selfsigned") to stay within 63.
*/}}
{{- define "safety-gate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "safety-gate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable across upgrades, never add to these. */}}
{{- define "safety-gate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "safety-gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{/* Common labels. */}}
{{- define "safety-gate.labels" -}}
helm.sh/chart: {{ include "safety-gate.chart" . }}
app.kubernetes.io/name: {{ include "safety-gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: safety-gate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of the webhook pods and their objects (common + component). */}}
{{- define "safety-gate.componentLabels" -}}
{{ include "safety-gate.labels" . }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "safety-gate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "safety-gate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Names of the objects other parts refer to. */}}
{{- define "safety-gate.serviceName" -}}
{{- include "safety-gate.fullname" . -}}
{{- end -}}
{{- define "safety-gate.metricsServiceName" -}}
{{- printf "%s-metrics" (include "safety-gate.fullname" .) -}}
{{- end -}}
{{- define "safety-gate.webhookConfigName" -}}
{{- include "safety-gate.fullname" . -}}
{{- end -}}
{{- define "safety-gate.webhookName" -}}
validate.safety-gate.ai.prometheus-alerts-slm.io
{{- end -}}
{{- define "safety-gate.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "secret" -}}
{{- .Values.certificates.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "safety-gate.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- define "safety-gate.datastoreSecretName" -}}
{{- printf "%s-datastores" (include "safety-gate.fullname" .) -}}
{{- end -}}
{{- define "safety-gate.policyConfigMapName" -}}
{{- printf "%s-policy" (include "safety-gate.fullname" .) -}}
{{- end -}}
{{- define "safety-gate.cleanupName" -}}
{{- printf "%s-cleanup" (include "safety-gate.fullname" .) -}}
{{- end -}}
{{- define "safety-gate.migrateName" -}}
{{- printf "%s-migrate" (include "safety-gate.fullname" .) -}}
{{- end -}}

{{- define "safety-gate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The chart's own single-instance stores: "true" when enabled and no external
store is given (a DSN/URL or an existing Secret always wins).
*/}}
{{- define "safety-gate.postgresql.bundled" -}}
{{- if and .Values.postgresql.enabled (not .Values.postgresql.dsn) (not .Values.postgresql.existingSecret) -}}
true
{{- end -}}
{{- end -}}
{{- define "safety-gate.redis.bundled" -}}
{{- if and .Values.redis.enabled (not .Values.redis.url) (not .Values.redis.existingSecret) -}}
true
{{- end -}}
{{- end -}}
{{/* Names of the bundled stores (StatefulSet/Deployment, Service, Secret); short enough for a StatefulSet. */}}
{{- define "safety-gate.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "safety-gate.fullname" . | trunc 40 | trimSuffix "-") -}}
{{- end -}}
{{- define "safety-gate.redis.fullname" -}}
{{- printf "%s-redis" (include "safety-gate.fullname" . | trunc 46 | trimSuffix "-") -}}
{{- end -}}
{{- define "safety-gate.postgresql.labels" -}}
{{ include "safety-gate.labels" . }}
app.kubernetes.io/component: postgresql
{{- end -}}
{{- define "safety-gate.postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "safety-gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: postgresql
{{- end -}}
{{- define "safety-gate.redis.labels" -}}
{{ include "safety-gate.labels" . }}
app.kubernetes.io/component: redis
{{- end -}}
{{- define "safety-gate.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "safety-gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{/*
A password that survives upgrades: the one already in the Secret (when the
cluster can be asked), else a new random one. `helm template` cannot ask, so it
prints a fresh one each time.
*/}}
{{- define "safety-gate.storedPassword" -}}
{{- $secret := lookup "v1" "Secret" .namespace .name -}}
{{- if and $secret $secret.data (hasKey $secret.data .key) -}}
{{- index $secret.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{/* Secret and key holding the PostgreSQL DSN, empty when not configured. */}}
{{- define "safety-gate.postgresSecretName" -}}
{{- if .Values.postgresql.existingSecret -}}
{{- .Values.postgresql.existingSecret -}}
{{- else if .Values.postgresql.dsn -}}
{{- include "safety-gate.datastoreSecretName" . -}}
{{- else if include "safety-gate.postgresql.bundled" . -}}
{{- include "safety-gate.postgresql.fullname" . -}}
{{- end -}}
{{- end -}}
{{- define "safety-gate.postgresSecretKey" -}}
{{- if .Values.postgresql.existingSecret -}}
{{- .Values.postgresql.existingSecretKey -}}
{{- else -}}
postgres-dsn
{{- end -}}
{{- end -}}
{{- define "safety-gate.redisSecretName" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else if .Values.redis.url -}}
{{- include "safety-gate.datastoreSecretName" . -}}
{{- else if include "safety-gate.redis.bundled" . -}}
{{- include "safety-gate.redis.fullname" . -}}
{{- end -}}
{{- end -}}
{{- define "safety-gate.redisSecretKey" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecretKey -}}
{{- else -}}
redis-url
{{- end -}}
{{- end -}}

{{/* "true" when the chart itself must create the datastore Secret. */}}
{{- define "safety-gate.createDatastoreSecret" -}}
{{- if or (and .Values.postgresql.dsn (not .Values.postgresql.existingSecret)) (and .Values.redis.url (not .Values.redis.existingSecret)) -}}
true
{{- end -}}
{{- end -}}

{{/* Datastore environment, shared by the gate and the migration Job. */}}
{{- define "safety-gate.datastoreEnv" -}}
{{- with (include "safety-gate.postgresSecretName" .) }}
- name: SAFETY_GATE_POSTGRES_DSN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "safety-gate.postgresSecretKey" $ }}
{{- end }}
{{- with (include "safety-gate.redisSecretName" .) }}
- name: SAFETY_GATE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "safety-gate.redisSecretKey" $ }}
{{- end }}
{{- end -}}

{{/* Common environment of every safety-gate container. */}}
{{- define "safety-gate.baseEnv" -}}
- name: SAFETY_GATE_DATA_DIR
  value: /var/lib/safety-gate
- name: SAFETY_GATE_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: SAFETY_GATE_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: SAFETY_GATE_CLUSTER_ID
  value: {{ .Values.clusterId | quote }}
- name: SAFETY_GATE_LOG_LEVEL
  value: {{ .Values.logLevel | upper | quote }}
{{- end -}}

{{/* Pod anti-affinity / affinity block. */}}
{{- define "safety-gate.affinity" -}}
{{- if .Values.affinity -}}
{{ toYaml .Values.affinity }}
{{- else if eq .Values.podAntiAffinity "hard" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "safety-gate.selectorLabels" . | nindent 10 }}
{{- else if eq .Values.podAntiAffinity "soft" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "safety-gate.selectorLabels" . | nindent 12 }}
{{- end -}}
{{- end -}}

{{/* Whether matchConditions are rendered (GA in Kubernetes 1.30). */}}
{{- define "safety-gate.matchConditionsEnabled" -}}
{{- $mode := .Values.webhook.matchConditions.mode -}}
{{- if eq $mode "always" -}}
true
{{- else if and (eq $mode "auto") (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) -}}
true
{{- end -}}
{{- end -}}

{{/* Fail early on value combinations the schema cannot express well. */}}
{{- define "safety-gate.validate" -}}
{{- if eq .Values.certificates.mode "secret" -}}
{{- if not .Values.certificates.existingSecret -}}
{{- fail "certificates.mode=secret needs certificates.existingSecret (a kubernetes.io/tls Secret with tls.crt and tls.key)" -}}
{{- end -}}
{{- if not .Values.certificates.caBundle -}}
{{- fail "certificates.mode=secret needs certificates.caBundle (base64-encoded PEM CA that signed the serving certificate)" -}}
{{- end -}}
{{- end -}}
{{- range .Values.policies -}}
{{- if not .name -}}
{{- fail "every entry of policies needs a name" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod-level securityContext and container securityContext for hook Jobs. */}}
{{- define "safety-gate.jobPodSpecCommon" -}}
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{- /*
CEL conditions for the pod, node and PVC rules (DESIGN §2). Each one is true for every other
resource, so Deployments, StatefulSets and PipelineRuns (and the HPA's changes, which are
recorded) are untouched. The gate applies the same rules itself, for clusters without
matchConditions.
*/ -}}
{{- define "safety-gate.actionMatchConditions" -}}
- name: pods-not-by-cluster-machinery
  expression: >-
    request.resource.resource != 'pods' ||
    !(request.userInfo.username.startsWith('system:node:') ||
    request.userInfo.username.startsWith('system:serviceaccount:kube-system:') ||
    request.userInfo.username in ['system:kube-controller-manager', 'system:kube-scheduler'] ||
    (has(request.userInfo.groups) && 'system:nodes' in request.userInfo.groups))
- name: pod-updates-only-quarantine
  expression: >-
    request.resource.resource != 'pods' || request.operation != 'UPDATE' ||
    (has(object.metadata.labels) && 'ai.prometheus-alerts-slm.io/quarantine' in object.metadata.labels &&
    object.metadata.labels['ai.prometheus-alerts-slm.io/quarantine'] == 'true' &&
    !(has(oldObject.metadata.labels) && 'ai.prometheus-alerts-slm.io/quarantine' in oldObject.metadata.labels &&
    oldObject.metadata.labels['ai.prometheus-alerts-slm.io/quarantine'] == 'true'))
- name: nodes-only-schedulability
  expression: >-
    request.resource.resource != 'nodes' ||
    (has(object.spec.unschedulable) && object.spec.unschedulable) !=
    (has(oldObject.spec.unschedulable) && oldObject.spec.unschedulable)
- name: pvcs-only-storage-requests
  expression: >-
    request.resource.resource != 'persistentvolumeclaims' ||
    !has(object.spec.resources) || !has(oldObject.spec.resources) ||
    object.spec.resources != oldObject.spec.resources
{{- end -}}
