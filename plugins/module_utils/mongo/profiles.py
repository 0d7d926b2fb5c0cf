# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The builtin profiles, as YAML text (Ansible ships only the .py files of module_utils to a managed host, so a
profile cannot be a .yml beside this file). profile.py reads and checks them; a user's profile is a YAML file of
the same schema.

MVI's profile follows IBM's migration tool (vision-tools, misc/migrationAides): the 24 collections its Mongo
accessor lists are the server scope; users select the top-level collections by ``owner``, project groups by
``project_group_id`` (the ProjectGroups document itself by ``_id``); the DataSet child collections follow their
data set by ``dataset_id``; the data set directory, the model files and thumbnails and the DNN script zip of
each document are the files to move, relative to the data mount (/opt/powerai-vision/data).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

MVI = r"""
profile: mvi
version: 1
database: DLAAS
collections: [DataSets, DLTasks, TrainedModels, ProjectGroups, BGTasks, DataSetCategories, DataSetFiles,
  DataSetFileLabels, DataSetFileUserKeys, DataSetTags, DataSetActiontags, DataSetFileActionLabels,
  DataSetFileObjectLabels, InferenceOps, InferenceDetails, WebAPIs, UserDNNs, DnnScripts, DeployableBinaries,
  DockerHostPorts, SysUsers, UploadOperations, Tokens, RegisteredApps]
scopes:
  users: {select_field: owner}
  project_groups: {select_field: project_group_id}
top_level:
  - {collection: ProjectGroups, select: {project_groups: _id}}
  - {collection: DataSets, files: [{dir: "join('/', [owner, 'datasets', _id])"}]}
  - {collection: TrainedModels, files: [{glob: "join('', [owner, '/trained-models/', _id, '*'])"},
                                        {glob: "join('', [owner, '/trained-models/thumbnails/', _id, '*'])"}]}
  - {collection: DnnScripts, files: [{file: "join('', [owner, '/dnn-scripts/', _id, '.zip'])"}]}
  - {collection: DLTasks}
  - {collection: BGTasks}
  - {collection: UserDNNs}
children:
  - {parent: DataSets, parent_key: _id, foreign_key: dataset_id,
     collections: [DataSetCategories, DataSetFiles, DataSetFileLabels, DataSetFileUserKeys, DataSetTags,
                   DataSetActiontags, DataSetFileActionLabels, DataSetFileObjectLabels]}
scope_files:
  server: [{dir: "'.'"}]
  users: [{dir: "item"}]
exclude: ["logs/migrations/"]
rewrites:
  thumbnail_path: {collection: TrainedModels, field: thumbnail_path, prefix: "uploads/", replace: "{data_mount}/"}
restore_order: children_first
"""

PROFILES = {"mvi": MVI}
